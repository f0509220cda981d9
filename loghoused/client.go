package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc/status"

	"github.com/loghouse/loghouse/pkg/client"
)

// clientFlags are the connection flags every client command takes; each
// defaults to its environment variable.
type clientFlags struct {
	addr, caCert, cert, key string
	timeout                 time.Duration
	// stale lets followers serve reads (consume -stale); otherwise reads
	// go to the leader, which has every acknowledged record.
	stale bool
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "addr", os.Getenv(client.EnvAddr), "addresses of any servers: host:port[,host:port...] or loghouse://host:port,..., or consul://SERVICE (Consul DNS) (env "+client.EnvAddr+")")
	fs.StringVar(&c.caCert, "ca-cert", os.Getenv(client.EnvCACert), "CA certificate file (env "+client.EnvCACert+")")
	fs.StringVar(&c.cert, "client-cert", os.Getenv(client.EnvClientCert), "client certificate file (env "+client.EnvClientCert+")")
	fs.StringVar(&c.key, "client-key", os.Getenv(client.EnvClientKey), "client key file (env "+client.EnvClientKey+")")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "deadline of each call")
}

// connect makes a cluster client with mutual TLS (servers must present a
// server-role certificate from the CA) and finds the cluster from the
// -addr seeds, within -timeout.
func (c *clientFlags) connect(ctx context.Context) (*client.Client, error) {
	if c.addr == "" || c.caCert == "" || c.cert == "" || c.key == "" {
		return nil, usageError{"set -addr, -ca-cert, -client-cert and -client-key (or LOGHOUSE_ADDR, LOGHOUSE_CACERT, LOGHOUSE_CLIENT_CERT, LOGHOUSE_CLIENT_KEY)"}
	}
	if err := client.CheckSeed(c.addr); err != nil {
		return nil, usageError{fmt.Sprintf("-addr: %v", err)}
	}
	seeds := []string{c.addr}
	tlsCfg, err := client.TLSConfigFromFiles(c.caCert, c.cert, c.key)
	if err != nil {
		return nil, err
	}
	cctx, cancel := c.ctx(ctx)
	defer cancel()
	cl, err := client.New(cctx, client.Config{Seeds: seeds, TLS: tlsCfg, ReadFromLeader: !c.stale})
	if err != nil {
		return nil, rpcError(err)
	}
	return cl, nil
}

func (c *clientFlags) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, c.timeout)
}

// rpcError turns an error that carries a gRPC status into "Code: message"
// for people and scripts; a write whose outcome is unknown says so.
func rpcError(err error) error {
	if err == nil {
		return nil
	}
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		return err
	}
	s := se.GRPCStatus()
	msg := s.Message()
	if errors.Is(err, client.ErrIndeterminate) {
		msg = "outcome unknown, the records may or may not have been committed: " + msg
	}
	return fmt.Errorf("%s: %s", s.Code(), msg)
}

// closeClient closes cl and adds its error, if any, to err.
func closeClient(cl *client.Client, err error) error {
	if cerr := cl.Close(); cerr != nil {
		return errors.Join(err, cerr)
	}
	return err
}
