package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
	"github.com/loghouse/loghouse/pkg/tlsutil"
)

// clientFlags are the connection flags every client command takes; each
// defaults to its environment variable.
type clientFlags struct {
	addr, caCert, cert, key string
	timeout                 time.Duration
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "addr", os.Getenv("LOGHOUSE_ADDR"), "server address host:port (env LOGHOUSE_ADDR)")
	fs.StringVar(&c.caCert, "ca-cert", os.Getenv("LOGHOUSE_CACERT"), "CA certificate file (env LOGHOUSE_CACERT)")
	fs.StringVar(&c.cert, "client-cert", os.Getenv("LOGHOUSE_CLIENT_CERT"), "client certificate file (env LOGHOUSE_CLIENT_CERT)")
	fs.StringVar(&c.key, "client-key", os.Getenv("LOGHOUSE_CLIENT_KEY"), "client key file (env LOGHOUSE_CLIENT_KEY)")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "deadline of each call")
}

// dial connects with mutual TLS; the server must present a server-role
// certificate from the CA.
func (c *clientFlags) dial() (*grpc.ClientConn, loghousev1.LogClient, error) {
	if c.addr == "" || c.caCert == "" || c.cert == "" || c.key == "" {
		return nil, nil, usageError{"set -addr, -ca-cert, -client-cert and -client-key (or LOGHOUSE_ADDR, LOGHOUSE_CACERT, LOGHOUSE_CLIENT_CERT, LOGHOUSE_CLIENT_KEY)"}
	}
	store, err := tlsutil.NewStore(tlsutil.Files{CAFile: c.caCert, CertFile: c.cert, KeyFile: c.key})
	if err != nil {
		return nil, nil, err
	}
	conn, err := grpc.NewClient(c.addr, grpc.WithTransportCredentials(credentials.NewTLS(store.ClientConfig(tlsutil.ServerRole))))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", c.addr, err)
	}
	return conn, loghousev1.NewLogClient(conn), nil
}

func (c *clientFlags) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, c.timeout)
}

// rpcError turns a gRPC status into "Code: message" for people and scripts.
func rpcError(err error) error {
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok {
		return fmt.Errorf("%s: %s", s.Code(), s.Message())
	}
	return err
}

func closeConn(conn *grpc.ClientConn, err error) error {
	if cerr := conn.Close(); cerr != nil && !errors.Is(cerr, context.Canceled) {
		return errors.Join(err, cerr)
	}
	return err
}
