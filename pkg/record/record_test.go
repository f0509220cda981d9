package record

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestBatchRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		recs []Record
	}{
		{name: "one value", recs: []Record{{Value: []byte("v")}}},
		{name: "empty value", recs: []Record{{Value: []byte{}}}},
		{name: "key and headers", recs: []Record{
			{Key: []byte("k1"), Value: []byte("hello"), Headers: []Header{{Name: "a", Value: []byte("1")}, {Name: "b", Value: nil}}},
			{Value: bytes.Repeat([]byte{0xff}, 300)},
		}},
		{name: "many", recs: func() []Record {
			r := make([]Record, 1000)
			for i := range r {
				r[i] = Record{Value: []byte{byte(i), byte(i >> 8)}}
			}
			return r
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := AppendBatch([]byte("prefix"), tt.recs)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(b, []byte("prefix")) {
				t.Fatal("AppendBatch lost the prefix")
			}
			b = b[len("prefix"):]
			want := 0
			for i := range tt.recs {
				want += tt.recs[i].EncodedSize()
			}
			if len(b) != batchHeaderSize+want {
				t.Fatalf("batch is %d bytes, EncodedSize says %d", len(b), batchHeaderSize+want)
			}
			if got := Count(b); got != uint32(len(tt.recs)) {
				t.Fatalf("Count = %d, want %d", got, len(tt.recs))
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.recs) {
				t.Fatalf("decoded %d records, want %d", len(got), len(tt.recs))
			}
			for i := range got {
				w := tt.recs[i]
				if len(w.Key) == 0 {
					w.Key = nil
				}
				for j := range w.Headers {
					if len(w.Headers[j].Value) == 0 {
						w.Headers[j].Value = []byte{}
					}
				}
				if !bytes.Equal(got[i].Value, w.Value) || !bytes.Equal(got[i].Key, w.Key) || !reflect.DeepEqual(got[i].Headers, w.Headers) {
					t.Fatalf("record %d = %+v, want %+v", i, got[i], w)
				}
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	good, err := AppendBatch(nil, []Record{{Key: []byte("k"), Value: []byte("value")}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
	}{
		{name: "empty", data: nil},
		{name: "wrong kind", data: append([]byte{0x02}, good[1:]...)},
		{name: "truncated", data: good[:len(good)-1]},
		{name: "trailing bytes", data: append(append([]byte{}, good...), 0)},
		{name: "count too high", data: []byte{KindBatch, 2, 0, 0, 0, 0, 1, 'v', 0}},
		{name: "length past end", data: []byte{KindBatch, 1, 0, 0, 0, 0, 50, 'v'}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decode(tt.data); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode = %v, want ErrMalformed", err)
			}
		})
	}
	if Count([]byte{0x02, 9, 0, 0, 0}) != 0 {
		t.Fatal("Count of a non-batch command is not 0")
	}
}

func FuzzDecode(f *testing.F) {
	good, _ := AppendBatch(nil, []Record{{Key: []byte("k"), Value: []byte("v"), Headers: []Header{{Name: "h", Value: []byte("x")}}}, {Value: []byte("w")}})
	f.Add(good)
	f.Add([]byte{KindBatch, 0, 0, 0, 0})
	f.Add([]byte{KindBatch, 255, 255, 255, 255, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := Decode(data)
		if err != nil {
			return
		}
		again, err := AppendBatch(nil, recs)
		if err != nil {
			t.Fatalf("re-encoding a decoded batch: %v", err)
		}
		if uint32(len(recs)) != Count(data) {
			t.Fatalf("decoded %d records, Count says %d", len(recs), Count(data))
		}
		recs2, err := Decode(again)
		if err != nil || len(recs2) != len(recs) {
			t.Fatalf("decode of re-encoded batch: %d records, %v", len(recs2), err)
		}
	})
}
