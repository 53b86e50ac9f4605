package schema

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The types of TestEncodedValuesValidate: what payloads are made of.

type propItem struct {
	SKU   string  `json:"sku"`
	Qty   int     `json:"qty"`
	Price float64 `json:"price"`
}

type propCustomer struct {
	Name  string            `json:"name"`
	Email *string           `json:"email"`
	Tags  []string          `json:"tags"`
	Attrs map[string]string `json:"attrs,omitempty"`
}

type propNested struct {
	ID       string              `json:"id"`
	Customer propCustomer        `json:"customer"`
	Items    []propItem          `json:"items"`
	ByID     map[string]propItem `json:"by_id"`
	Ptrs     []*propItem         `json:"ptrs"`
	Parent   *propNested         `json:"parent,omitempty"`
	At       time.Time           `json:"at"`
	AtPtr    *time.Time          `json:"at_ptr"`
	Grid     [][]int             `json:"grid"`
}

type PropBase struct {
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"created_at"`
}

type PropAudit struct {
	By   string `json:"by"`
	Note string `json:"note"`
}

type propHidden struct {
	Promoted string `json:"promoted"`
}

type propEmbedded struct {
	PropBase
	*PropAudit
	propHidden
	Name   string   `json:"name"`
	Tagged PropBase `json:"tagged"`
}

type propBox[T any] struct {
	Value T   `json:"value"`
	List  []T `json:"list"`
	Ptr   *T  `json:"ptr"`
}

type propTags struct {
	Secret    string   `json:"-"`
	Opt       string   `json:"opt,omitempty"`
	OptInt    int      `json:"opt_int,omitempty"`
	OptSlice  []int    `json:"opt_slice,omitempty"`
	Zero      propItem `json:"zero,omitzero"`
	N         int64    `json:"n,string"`
	U         uint64   `json:"u,string"`
	F         float64  `json:"f,string"`
	B         bool     `json:"b,string"`
	P         *int     `json:"p,string"`
	S         string   `json:"s,string"`
	NoTagName string
	Renamed   int `json:",omitempty"`
}

// propLevel writes itself as text, also as a map key.
type propLevel int

func (l propLevel) MarshalText() ([]byte, error) { return fmt.Appendf(nil, "L%d", int(l)), nil }

// propMoney writes itself as a JSON number.
type propMoney struct{ Cents int64 }

func (m propMoney) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, "%d", m.Cents), nil
}

// propSecret writes itself as a string with a pointer receiver.
type propSecret struct{ v string }

func (s *propSecret) MarshalJSON() ([]byte, error) { return json.Marshal("***" + s.v) }

type propKinds struct {
	Bytes    []byte            `json:"bytes"`
	Raw      json.RawMessage   `json:"raw"`
	Any      any               `json:"any"`
	Map      map[string]any    `json:"map"`
	IntMap   map[int]string    `json:"int_map"`
	UintMap  map[uint8]bool    `json:"uint_map"`
	LvlMap   map[propLevel]int `json:"lvl_map"`
	Stringer fmt.Stringer      `json:"stringer"`
	Big      uint64            `json:"big"`
	Neg      int64             `json:"neg"`
	Small    int8              `json:"small"`
	F32      float32           `json:"f32"`
	F64      float64           `json:"f64"`
	Arr      [3]int            `json:"arr"`
	ByteArr  [4]byte           `json:"byte_arr"`
	Dur      time.Duration     `json:"dur"`
	Level    propLevel         `json:"level"`
	Money    propMoney         `json:"money"`
	MoneyPtr *propMoney        `json:"money_ptr"`
	Secret   propSecret        `json:"secret"`
	IP       net.IP            `json:"ip"`
	Addr     netip.Addr        `json:"addr"`
	URL      url.URL           `json:"url"`
	URLPtr   *url.URL          `json:"url_ptr"`
	Anon     struct {
		X int `json:"x"`
	} `json:"anon"`
	PP **string `json:"pp"`
}

type propShadowA struct {
	Name string `json:"name"`
	X    int
}

type propShadowB struct {
	Y int `json:"y"`
	X string
}

// propShadow: the outer name wins over the embedded one; the two X at
// the same depth cancel out (encoding/json writes neither).
type propShadow struct {
	propShadowA
	Name bool `json:"name"`
	propShadowB
}

type propOdd struct {
	Dash   string      `json:"-,"`
	Inline propShadowA `json:",inline"`
	Count  propCount   `json:"count,string"`
}

type propCount int

// propPtrText writes itself as text with a pointer receiver: encoding/json
// calls it only where the value is addressable (behind a pointer, in a
// slice), and writes its fields elsewhere.
type propPtrText struct{ V int }

func (p *propPtrText) MarshalText() ([]byte, error) { return fmt.Appendf(nil, "v%d", p.V), nil }

type propPtrTexts struct {
	Val  propPtrText   `json:"val"`
	Ptr  *propPtrText  `json:"ptr"`
	List []propPtrText `json:"list"`
}

// propStamped embeds time.Time: its MarshalJSON is promoted, so
// encoding/json writes only the time.
type propStamped struct {
	time.Time
	Note string `json:"note"`
}

type PropTags []string

type propEmbeds struct {
	Stamped propStamped `json:"stamped"`
	PropTags
	fmt.Stringer
	Ptr *propStamped `json:"ptr"`
}

// propByte is a byte: a slice of them is base64 too.
type propByte uint8

type propNumbers struct {
	Number   json.Number       `json:"number"`
	NumPtr   *json.Number      `json:"num_ptr"`
	Numbers  []json.Number     `json:"numbers"`
	Octets   []propByte        `json:"octets"`
	SlicePtr *[]int            `json:"slice_ptr"`
	Matrix   map[string][]byte `json:"matrix"`
}

type propNode struct {
	V    int       `json:"v"`
	Next *propNode `json:"next"`
}

// TestEncodedValuesValidate is the property every schema must have: a
// value of the payload type, encoded by encoding/json (what the JSON codec
// sends), is valid against the type's schema. A false refusal here is a
// payload that Fire, busline fire or a listener would refuse though the
// Go type produced it.
func TestEncodedValuesValidate(t *testing.T) {
	types := []reflect.Type{
		reflect.TypeFor[propNested](),
		reflect.TypeFor[propEmbedded](),
		reflect.TypeFor[propBox[propItem]](),
		reflect.TypeFor[propBox[map[string]propItem]](),
		reflect.TypeFor[propTags](),
		reflect.TypeFor[propKinds](),
		reflect.TypeFor[propNode](),
		reflect.TypeFor[propShadow](),
		reflect.TypeFor[propOdd](),
		reflect.TypeFor[propNumbers](),
		reflect.TypeFor[propPtrTexts](),
		reflect.TypeFor[propEmbeds](),
		reflect.TypeFor[[]propItem](),
		reflect.TypeFor[map[string]int](),
		reflect.TypeFor[map[int64]propItem](),
		reflect.TypeFor[time.Time](),
		reflect.TypeFor[*propItem](),
		reflect.TypeFor[string](),
		reflect.TypeFor[any](),
	}
	for _, typ := range types {
		t.Run(typ.String(), func(t *testing.T) {
			v, err := Compile(For(typ).JSON)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, uint64(len(typ.String()))))
			for i := range 300 {
				val := randomValue(rng, typ, 0)
				data, err := json.Marshal(val.Interface())
				if err != nil {
					t.Fatalf("value %d: encoding/json: %v", i, err)
				}
				if err := v.Validate(data); err != nil {
					t.Fatalf("value %d, encoded by encoding/json, refused by the schema of its type:\n%s\n%v\nschema: %s", i, data, err, For(typ).JSON)
				}
			}
		})
	}
}

var (
	propTimeType   = reflect.TypeFor[time.Time]()
	propIPType     = reflect.TypeFor[net.IP]()
	propAddrType   = reflect.TypeFor[netip.Addr]()
	propURLType    = reflect.TypeFor[url.URL]()
	propRawType    = reflect.TypeFor[json.RawMessage]()
	propNumberType = reflect.TypeFor[json.Number]()
)

// randomValue makes a random value of t: zero values, nils, extremes and
// odd strings come up often.
func randomValue(rng *rand.Rand, t reflect.Type, depth int) reflect.Value {
	v := reflect.New(t).Elem()
	switch t {
	case propTimeType:
		sec := rng.Int64N(253402300799+62135596800) - 62135596800            // years 1 to 9999
		zone := time.FixedZone("", (rng.IntN(2*(23*60+59)+1)-(23*60+59))*60) // encoding/json takes offsets below 24h
		tm := time.Unix(sec, rng.Int64N(1e9)).In(zone)
		if tm.Year() < 1 || tm.Year() > 9999 || rng.IntN(8) == 0 {
			tm = time.Time{}
		}
		v.Set(reflect.ValueOf(tm))
		return v
	case propIPType:
		switch rng.IntN(3) {
		case 0:
			v.Set(reflect.ValueOf(net.IPv4(byte(rng.IntN(256)), byte(rng.IntN(256)), 0, 1)))
		case 1:
			ip := make(net.IP, 16)
			for i := range ip {
				ip[i] = byte(rng.IntN(256))
			}
			v.Set(reflect.ValueOf(ip))
		}
		return v
	case propAddrType:
		if rng.IntN(2) == 0 {
			v.Set(reflect.ValueOf(netip.AddrFrom4([4]byte{10, 0, 0, byte(rng.IntN(256))})))
		}
		return v
	case propURLType:
		u, _ := url.Parse(fmt.Sprintf("https://user:pw@example.com:%d/p/%d?q=%d#f", rng.IntN(65536), rng.IntN(9), rng.IntN(9)))
		v.Set(reflect.ValueOf(*u))
		return v
	case propNumberType:
		ns := []string{"0", "-1.5e300", "12345678901234567890", "3.25"}
		v.SetString(ns[rng.IntN(len(ns))])
		return v
	case propRawType:
		data, _ := json.Marshal(randomAny(rng, depth))
		v.SetBytes(data)
		return v
	}
	switch t.Kind() {
	case reflect.Bool:
		v.SetBool(rng.IntN(2) == 0)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		bits := t.Bits()
		switch rng.IntN(4) {
		case 0:
			v.SetInt(-1 << (bits - 1))
		case 1:
			v.SetInt(1<<(bits-1) - 1)
		case 2:
			v.SetInt(0)
		default:
			v.SetInt(int64(rng.Uint64()) >> (64 - bits))
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		switch rng.IntN(3) {
		case 0:
			v.SetUint(math.MaxUint64 >> (64 - t.Bits()))
		case 1:
			v.SetUint(0)
		default:
			v.SetUint(rng.Uint64() >> (64 - t.Bits()))
		}
	case reflect.Float32, reflect.Float64:
		fs := []float64{0, -0.5, 1e21, -1e-7, 3, math.MaxFloat32, math.SmallestNonzeroFloat64, rng.NormFloat64() * 1e6}
		f := fs[rng.IntN(len(fs))]
		if t.Kind() == reflect.Float64 && rng.IntN(4) == 0 {
			f = math.MaxFloat64
		}
		v.SetFloat(f)
	case reflect.String:
		ss := []string{"", "plain", "ünïcödé ☃", "quote\" back\\slash", "<html>&", "line\nbreak\ttab", "\u2028", "123", "-"}
		v.SetString(ss[rng.IntN(len(ss))])
	case reflect.Slice:
		if rng.IntN(4) == 0 {
			return v // nil
		}
		n := rng.IntN(4)
		if depth > 4 {
			n = 0
		}
		s := reflect.MakeSlice(t, n, n)
		for i := range n {
			s.Index(i).Set(randomValue(rng, t.Elem(), depth+1))
		}
		v.Set(s)
	case reflect.Array:
		for i := range t.Len() {
			v.Index(i).Set(randomValue(rng, t.Elem(), depth+1))
		}
	case reflect.Map:
		if rng.IntN(4) == 0 {
			return v // nil
		}
		m := reflect.MakeMap(t)
		n := rng.IntN(4)
		if depth > 4 {
			n = 0
		}
		for range n {
			m.SetMapIndex(randomValue(rng, t.Key(), depth+1), randomValue(rng, t.Elem(), depth+1))
		}
		v.Set(m)
	case reflect.Pointer:
		if depth > 4 || rng.IntN(3) == 0 {
			return v // nil
		}
		p := reflect.New(t.Elem())
		p.Elem().Set(randomValue(rng, t.Elem(), depth+1))
		v.Set(p)
	case reflect.Struct:
		for i := range t.NumField() {
			if f := v.Field(i); f.CanSet() {
				f.Set(randomValue(rng, t.Field(i).Type, depth+1))
			}
		}
	case reflect.Interface:
		if t.NumMethod() == 0 {
			if a := randomAny(rng, depth); a != nil {
				v.Set(reflect.ValueOf(a))
			}
			return v
		}
		for _, c := range []any{net.IPv4(1, 2, 3, 4), time.Second, propLevel(3), &url.URL{Host: "h"}} {
			if reflect.TypeOf(c).Implements(t) && rng.IntN(2) == 0 {
				v.Set(reflect.ValueOf(c))
				break
			}
		}
	}
	return v
}

// randomAny is a random value of what encoding/json decodes into any.
func randomAny(rng *rand.Rand, depth int) any {
	n := 7
	if depth > 3 {
		n = 5
	}
	switch rng.IntN(n) {
	case 0:
		return nil
	case 1:
		return rng.IntN(2) == 0
	case 2:
		return rng.NormFloat64() * 1e3
	case 3:
		return strings.Repeat("x", rng.IntN(3))
	case 4:
		return json.Number("12345678901234567890")
	case 5:
		return []any{randomAny(rng, depth+1), randomAny(rng, depth+1)}
	default:
		return map[string]any{"k": randomAny(rng, depth+1)}
	}
}
