package redisstream

import (
	"encoding/binary"
	"errors"
)

// The metadata field of an entry is a msgpack map of string to string, as
// watermill-redisstream writes it with github.com/vmihailenco/msgpack. This
// file encodes and decodes exactly that shape without reflection; decode
// falls back to the msgpack library for any other valid encoding.

const (
	mpFixMapLow = 0x80
	mpFixMapMax = 0x8f
	mpFixStrLow = 0xa0
	mpFixStrMax = 0xbf
	mpNil       = 0xc0
	mpBin8      = 0xc4
	mpBin16     = 0xc5
	mpBin32     = 0xc6
	mpStr8      = 0xd9
	mpStr16     = 0xda
	mpStr32     = 0xdb
	mpMap16     = 0xde
	mpMap32     = 0xdf
)

// appendMetadata appends md as a msgpack map, choosing the same formats as
// vmihailenco/msgpack v4 (fixmap/map16/map32, fixstr/str8/str16/str32).
func appendMetadata(b []byte, md map[string]string) []byte {
	n := len(md)
	switch {
	case n < 16:
		b = append(b, byte(mpFixMapLow|n))
	case n < 1<<16:
		b = append(b, mpMap16)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, mpMap32)
		b = binary.BigEndian.AppendUint32(b, uint32(n))
	}
	for k, v := range md {
		b = appendStr(b, k)
		b = appendStr(b, v)
	}
	return b
}

func appendStr(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, byte(mpFixStrLow|n))
	case n < 1<<8:
		b = append(b, mpStr8, byte(n))
	case n < 1<<16:
		b = append(b, mpStr16)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, mpStr32)
		b = binary.BigEndian.AppendUint32(b, uint32(n))
	}
	return append(b, s...)
}

// metadataSize is the encoded size of md, to allocate once.
func metadataSize(md map[string]string) int {
	n := 5
	for k, v := range md {
		n += 10 + len(k) + len(v)
	}
	return n
}

var errMsgpackShape = errors.New("not a msgpack map of strings in the common formats")

// parseMetadata decodes a msgpack map of strings (string or binary
// formats; nil decodes to an empty map). It reports errMsgpackShape for
// anything else, for the caller to try the msgpack library.
func parseMetadata(s string) (map[string]string, error) {
	p := mpReader{s: s}
	n, ok := p.mapLen()
	if !ok {
		return nil, errMsgpackShape
	}
	md := make(map[string]string, n)
	for range n {
		k, ok1 := p.str()
		v, ok2 := p.str()
		if !ok1 || !ok2 {
			return nil, errMsgpackShape
		}
		md[k] = v
	}
	if p.i != len(p.s) {
		return nil, errMsgpackShape
	}
	return md, nil
}

type mpReader struct {
	s string
	i int
}

func (p *mpReader) byte1() (byte, bool) {
	if p.i >= len(p.s) {
		return 0, false
	}
	c := p.s[p.i]
	p.i++
	return c, true
}

func (p *mpReader) uint(size int) (int, bool) {
	if p.i+size > len(p.s) {
		return 0, false
	}
	var v uint64
	for j := range size {
		v = v<<8 | uint64(p.s[p.i+j])
	}
	p.i += size
	if v > uint64(len(p.s)) { // cannot fit: truncated or hostile
		return 0, false
	}
	return int(v), true
}

func (p *mpReader) mapLen() (int, bool) {
	c, ok := p.byte1()
	switch {
	case !ok:
		return 0, false
	case c >= mpFixMapLow && c <= mpFixMapMax:
		return int(c & 0x0f), true
	case c == mpNil:
		return 0, true
	case c == mpMap16:
		return p.uint(2)
	case c == mpMap32:
		return p.uint(4)
	}
	return 0, false
}

func (p *mpReader) str() (string, bool) {
	c, ok := p.byte1()
	if !ok {
		return "", false
	}
	var n int
	switch {
	case c >= mpFixStrLow && c <= mpFixStrMax:
		n = int(c & 0x1f)
	case c == mpStr8 || c == mpBin8:
		n, ok = p.uint(1)
	case c == mpStr16 || c == mpBin16:
		n, ok = p.uint(2)
	case c == mpStr32 || c == mpBin32:
		n, ok = p.uint(4)
	default:
		return "", false
	}
	if !ok || p.i+n > len(p.s) {
		return "", false
	}
	v := p.s[p.i : p.i+n]
	p.i += n
	return v, true
}
