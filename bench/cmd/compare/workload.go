package main

import (
	"fmt"
	"strconv"
	"strings"
)

// workload is one measured load: producers × requests of batch records of
// size bytes, unary or pipelined (inflight requests per producer), or a
// consumer reading a log of records records from its start.
type workload struct {
	Name      string // "unary-8", "stream-64", "consume"
	Consume   bool
	Stream    bool
	Producers int
	Batch     int
	Inflight  int
	Size      int
	Records   int // consume: log length read
}

// produceWorkload parses "unary-N" or "stream-N". Unary requests carry one
// record; streaming ones batch records with inflight requests in flight
// per producer.
func produceWorkload(name string, size, batch, inflight int) (workload, error) {
	mode, n, ok := strings.Cut(name, "-")
	producers, err := strconv.Atoi(n)
	if !ok || err != nil || producers < 1 || (mode != "unary" && mode != "stream") {
		return workload{}, fmt.Errorf("workload %q: want unary-N or stream-N", name)
	}
	w := workload{Name: name, Producers: producers, Batch: 1, Inflight: 1, Size: size}
	if mode == "stream" {
		w.Stream, w.Batch, w.Inflight = true, batch, inflight
	}
	return w, nil
}

// describe says what a workload is, for the report.
func (w workload) describe() string {
	switch {
	case w.Consume:
		return fmt.Sprintf("1 consumer reads %d records of %d B from the start, warm", w.Records, w.Size)
	case w.Stream:
		return fmt.Sprintf("%d producers × requests of %d records of %d B, %d in flight each", w.Producers, w.Batch, w.Size, w.Inflight)
	}
	return fmt.Sprintf("%d producers × unary requests of 1 record of %d B", w.Producers, w.Size)
}

// key names a workload with its record size.
func (w workload) key() string { return fmt.Sprintf("%s/%dB", w.Name, w.Size) }
