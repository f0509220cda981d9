package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/go-hclog"

	"github.com/loghouse/loghouse/pkg/auth"
	"github.com/loghouse/loghouse/pkg/config"
	"github.com/loghouse/loghouse/pkg/tlsutil"
)

// runValidate checks configuration files as the agent would load them
// (in order, then the environment), without starting anything: the HCL,
// every cross-field rule, and that the TLS and ACL files they name load.
func runValidate(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("validate", stderr)
	var dirs stringList
	fs.Var(&dirs, "config-dir", "also load the *.hcl files of this directory, after the files (repeatable)")
	noFiles := fs.Bool("syntax-only", false, "check the configuration only, not the TLS and ACL files it names")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: loghoused validate [-config-dir DIR] [-syntax-only] FILE...")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 && len(dirs) == 0 {
		return usageError{"validate needs at least one FILE or -config-dir DIR"}
	}
	cfg := config.Default()
	for _, f := range fs.Args() {
		if err := cfg.LoadFile(f); err != nil {
			return err
		}
	}
	for _, d := range dirs {
		if err := cfg.LoadDir(d); err != nil {
			return err
		}
	}
	cfg.ApplyEnv()
	if err := cfg.ResolveAddrs(); err != nil {
		return err
	}
	if err := cfg.Validate(false); err != nil {
		return err
	}
	if !*noFiles {
		var errs []error
		files := tlsutil.Files{CAFile: cfg.TLS.CAFile, CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile}
		if _, err := tlsutil.NewStore(files); err != nil {
			errs = append(errs, err)
		}
		if _, err := auth.New(cfg.ACL.ModelFile, cfg.ACL.PolicyFile, hclog.NewNullLogger()); err != nil {
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("the configuration is valid, but the files it names are not: %w", err)
		}
	}
	fmt.Fprintln(stdout, "Configuration is valid.")
	return nil
}
