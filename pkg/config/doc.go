// Package config is the agent's configuration: the HCL schema, its
// defaults, loading and validation.
//
// Load order is Default(), then each -config file in turn (a later file
// overrides what it sets), then command-line flags; Validate runs last and
// reports every problem at once. Parse errors, unknown keys and bad values
// name the file, line and column. Sizes are strings with units ("64MiB",
// "1GB") or plain byte counts; durations are Go durations ("30s", "1h").
//
// See config.hcl.example at the repository root for every setting with its
// default.
package config
