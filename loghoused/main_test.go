package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func TestRunCommands(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name      string
		args      []string
		wantUsage bool
		wantOut   []string
	}{
		{name: "no command", args: nil, wantUsage: true},
		{name: "unknown command", args: []string{"frobnicate"}, wantUsage: true},
		{name: "help", args: []string{"help"}, wantOut: []string{"Commands:", "demo", "log dump"}},
		{name: "bad sync", args: []string{"demo", "-sync", "sometimes"}, wantUsage: true},
		{name: "bad records", args: []string{"demo", "-records", "0"}, wantUsage: true},
		{name: "demo", args: []string{"demo", "-dir", dir, "-records", "1000", "-sync", "none"}, wantOut: []string{
			"appended 1000 records",
			"indexes [1, 16], offsets [0, 1000)",
			"record at offset 333: entry 6, record says offset 333",
			"read 1000 records sequentially",
		}},
		{name: "demo again appends after", args: []string{"demo", "-dir", dir, "-records", "64"}, wantOut: []string{
			"next index 17, next offset 1000",
			"indexes [1, 17], offsets [0, 1064)",
		}},
		{name: "dump", args: []string{"log", "dump", dir}, wantOut: []string{
			"indexes [1, 17], offsets [0, 1064)",
			"index=1 term=0 type=0 offset=0 count=64",
			"index=17 term=0 type=0 offset=1000 count=64",
		}},
		{name: "dump without dir", args: []string{"log", "dump"}, wantUsage: true},
		{name: "log without dump", args: []string{"log"}, wantUsage: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tt.args, &stdout, &stderr)
			t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			var ue usageError
			if got := errors.As(err, &ue); got != tt.wantUsage {
				t.Fatalf("run(%q) = %v; usage error %v, want %v", tt.args, err, got, tt.wantUsage)
			}
			if !tt.wantUsage && err != nil {
				t.Fatalf("run(%q) = %v", tt.args, err)
			}
			for _, want := range tt.wantOut {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout lacks %q", want)
				}
			}
		})
	}
}
