package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// serveNATS runs one embedded nats-server with JetStream, in its own
// process (started by the compare run), until SIGTERM:
//
//	compare serve-nats -name n1 -port P -dir DIR [-cluster-port C -routes nats://127.0.0.1:C2,...] [-sync-always]
//
// Everything else is nats-server's default. -sync-always is the
// configuration file's `sync_interval: always` (fsync after every write);
// without it the file store flushes to the OS and fsyncs every two
// minutes.
func serveNATS(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve-nats", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "n1", "server name")
	port := fs.Int("port", 0, "client port on 127.0.0.1")
	dir := fs.String("dir", "", "JetStream store directory")
	clusterPort := fs.Int("cluster-port", 0, "cluster (route) port on 127.0.0.1; 0: not clustered")
	routes := fs.String("routes", "", "comma-separated route URLs of the other servers")
	syncAlways := fs.Bool("sync-always", false, "sync_interval: always")
	readyTimeout := fs.Duration("ready-timeout", 30*time.Second, "how long to wait for the server to accept connections")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || *port == 0 {
		return errors.New("serve-nats needs -dir and -port")
	}
	opts := &server.Options{
		ServerName: *name,
		Host:       "127.0.0.1",
		Port:       *port,
		JetStream:  true,
		StoreDir:   *dir,
		NoSigs:     true,
	}
	if *syncAlways {
		// What `sync_interval: always` sets when a file is parsed.
		opts.SyncAlways = true
	}
	if *clusterPort != 0 {
		opts.Cluster = server.ClusterOpts{Name: "bench", Host: "127.0.0.1", Port: *clusterPort}
		for _, r := range strings.Split(*routes, ",") {
			if r == "" {
				continue
			}
			u, err := url.Parse(r)
			if err != nil {
				return fmt.Errorf("route %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return err
	}
	s.ConfigureLogger()
	go s.Start()
	if !s.ReadyForConnections(*readyTimeout) {
		s.Shutdown()
		return fmt.Errorf("nats-server %s not ready after %s", *name, *readyTimeout)
	}
	fmt.Fprintf(stdout, "nats-server %s ready on %s\n", *name, s.ClientURL())
	<-ctx.Done()
	s.Shutdown()
	s.WaitForShutdown()
	return nil
}
