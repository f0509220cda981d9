package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseProfileOptions(t *testing.T) {
	o, err := parseProfileOptions([]string{"-out", "x"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.nodes != 3 || o.sync != "always" || o.producers != 1 || o.stream || o.seconds != 5 || o.trace != 2*time.Second {
		t.Fatalf("defaults: %+v", o)
	}
	bad := []struct {
		args []string
		want string
	}{
		{nil, "-out is required"},
		{[]string{"-out", "x", "-nodes", "4"}, "-nodes 4"},
		{[]string{"-out", "x", "-sync", "sometimes"}, `-sync "sometimes"`},
		{[]string{"-out", "x", "-producers", "0"}, "must be positive"},
		{[]string{"-out", "x", "-seconds", "2", "-trace", "3s"}, "-trace 3s must be between 0 and -seconds (2s)"},
		{[]string{"-out", "x", "-warmup", "-1s"}, "-warmup -1s must not be negative"},
		{[]string{"-out", "x", "-page-cache", "cold"}, `-page-cache "cold": want full or free`},
	}
	for _, b := range bad {
		_, err := parseProfileOptions(b.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("parseProfileOptions(%q) = %v, want an error naming %q", b.args, err, b.want)
		}
	}
}

func TestProfileBenchArgs(t *testing.T) {
	o, err := parseProfileOptions([]string{"-out", "x", "-producers", "8", "-seconds", "3", "-warmup", "1s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	got := o.benchArgs("/p/client.cpu.pb.gz")
	// The load outlasts the profiles by a second.
	want := []string{"produce", "-producers", "8", "-size", "256", "-warmup", "1s", "-duration", "4s", "-cpuprofile", "/p/client.cpu.pb.gz"}
	if !slices.Equal(got, want) {
		t.Fatalf("unary: %q, want %q", got, want)
	}
	o.stream = true
	got = o.benchArgs("c")
	if !slices.Equal(got[len(got)-5:], []string{"-stream", "-batch", "64", "-inflight", "4"}) {
		t.Fatalf("stream: %q", got)
	}
}

func TestFindLeaderAndDownload(t *testing.T) {
	follower := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/status":
			_, _ = io.WriteString(w, `{"node_id":"n1","raft_state":"Follower","leader_id":""}`)
		case "/debug/pprof/profile":
			http.Error(w, "profiling disabled", http.StatusNotFound)
		default:
			http.NotFound(w, r)
		}
	}))
	defer follower.Close()
	leader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/status":
			_, _ = io.WriteString(w, `{"node_id":"n2","raft_state":"Leader","leader_id":"n2"}`)
		case "/metrics":
			_, _ = io.WriteString(w, "raft_commitTime_count 3\n")
		default:
			http.NotFound(w, r)
		}
	}))
	defer leader.Close()
	host := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }
	c := lhCluster{names: []string{"n1", "n2"}, http: []string{host(follower), host(leader)}}
	ctx := context.Background()
	got, err := findLeader(ctx, c)
	if err != nil || got != "n2" {
		t.Fatalf("findLeader = %q, %v; want n2", got, err)
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "m.txt")
	if err := download(ctx, leader.URL+"/metrics", path, time.Second); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "raft_commitTime_count 3\n" {
		t.Fatalf("downloaded %q, %v", b, err)
	}
	// A refusal is an error that carries the server's reason, and
	// leaves no file behind.
	bad := filepath.Join(dir, "cpu.pb.gz")
	err = download(ctx, follower.URL+"/debug/pprof/profile?seconds=1", bad, time.Second)
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "profiling disabled") {
		t.Fatalf("download of a refused profile: %v", err)
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Fatalf("a refused download left %s (%v)", bad, err)
	}
}
