package consul

import "errors"

var (
	// ErrInvalidConfig wraps every configuration error.
	ErrInvalidConfig = errors.New("consul: invalid configuration")
	// ErrNoInstances is returned when Consul knows no (healthy) instance
	// of the service: the catalog or DNS answered, with nothing.
	ErrNoInstances = errors.New("consul: no instances")
)
