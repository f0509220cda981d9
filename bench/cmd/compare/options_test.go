package main

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestUnaryDuration: unary workloads are measured for -unary-duration
// (default: -duration or 3s, whichever is longer), streaming ones for
// -duration, both in the loghoused bench arguments and in the flags the
// child commands get.
func TestUnaryDuration(t *testing.T) {
	for _, tc := range []struct {
		args        []string
		stream, una time.Duration
	}{
		{nil, time.Second, 3 * time.Second},
		{[]string{"-mode", "full"}, 5 * time.Second, 5 * time.Second},
		{[]string{"-duration", "4s"}, 4 * time.Second, 4 * time.Second},
		{[]string{"-unary-duration", "2s"}, time.Second, 2 * time.Second},
	} {
		o, err := parseOptions(tc.args, io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if o.duration != tc.stream || o.unaryDuration != tc.una {
			t.Fatalf("%v: duration %s, unary %s; want %s and %s", tc.args, o.duration, o.unaryDuration, tc.stream, tc.una)
		}
		e := &env{opts: o}
		unary, err := produceWorkload("unary-1", 256, 64, 4)
		if err != nil {
			t.Fatal(err)
		}
		stream, err := produceWorkload("stream-8", 256, 64, 4)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.benchLoadArgs(unary); !slices.Equal(got, []string{"-duration", tc.una.String(), "-warmup", o.warmup.String()}) {
			t.Fatalf("%v: unary bench args %q", tc.args, got)
		}
		if got := e.benchLoadArgs(stream); !slices.Equal(got, []string{"-duration", tc.stream.String(), "-warmup", o.streamWarmup.String()}) {
			t.Fatalf("%v: stream bench args %q", tc.args, got)
		}
		// The child commands parse what loadArgs passes and pick the same.
		var lf loadFlags
		fs := flagSetFor(t, &lf)
		if err := fs.Parse(e.loadArgs()); err != nil {
			t.Fatal(err)
		}
		if got := lf.config(unary).Duration; got != tc.una {
			t.Fatalf("%v: child's unary duration %s, want %s", tc.args, got, tc.una)
		}
		if got := lf.config(stream).Duration; got != tc.stream {
			t.Fatalf("%v: child's stream duration %s, want %s", tc.args, got, tc.stream)
		}
	}
	if _, err := parseOptions([]string{"-unary-duration", "-1s"}, io.Discard); err == nil {
		t.Fatal("a negative -unary-duration was accepted")
	}
}

func flagSetFor(t *testing.T, lf *loadFlags) *flag.FlagSet {
	t.Helper()
	fs := flag.NewFlagSet("child", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	lf.register(fs)
	return fs
}

func TestPageCacheMode(t *testing.T) {
	for _, mode := range []string{"full", "free"} {
		if o, err := parseOptions([]string{"-page-cache", mode}, io.Discard); err != nil || o.pageCache != mode {
			t.Fatalf("-page-cache %s: %v, got %q", mode, err, o.pageCache)
		}
	}
	if o, err := parseOptions(nil, io.Discard); err != nil || o.pageCache != "full" {
		t.Fatalf("default -page-cache: %v, got %q", err, o.pageCache)
	}
	if _, err := parseOptions([]string{"-page-cache", "cold"}, io.Discard); err == nil || !strings.Contains(err.Error(), `-page-cache "cold": want full or free`) {
		t.Fatalf("-page-cache cold: %v", err)
	}
}
