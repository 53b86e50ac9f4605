package schema

import (
	"bytes"
	"reflect"
	"testing"
)

type priceV1 struct {
	SKU   string  `json:"sku"`
	Price float64 `json:"price"`
}

type priceV2Renamed struct {
	SKU    string  `json:"sku"`
	Amount float64 `json:"amount"`
}

type priceV2Added struct {
	SKU      string  `json:"sku"`
	Price    float64 `json:"price"`
	Currency string  `json:"currency"`
}

type priceV2Optional struct {
	SKU   string  `json:"sku"`
	Price float64 `json:"price,omitempty"`
}

type priceV2Type struct {
	SKU   string `json:"sku"`
	Price string `json:"price"`
}

type priceInt struct {
	SKU   string `json:"sku"`
	Price int    `json:"price"`
}

type order struct {
	Lines []priceV1 `json:"lines"`
}

type orderV2 struct {
	Lines []priceV2Type `json:"lines"`
}

// treeV1 refers to itself: its schema refers to the root ("#").
type treeV1 struct {
	ID     string   `json:"id"`
	Name   string   `json:"name"`
	Parent *treeV1  `json:"parent,omitempty"`
	Kids   []treeV1 `json:"kids"`
}

// treeV2 renames id and changes the type of name.
type treeV2 struct {
	Key    string   `json:"key"`
	Name   int      `json:"name"`
	Parent *treeV2  `json:"parent,omitempty"`
	Kids   []treeV2 `json:"kids"`
}

// forest holds a recursive type below the root: it is a definition.
type forest struct {
	Root treeV1 `json:"root"`
}

type forestV2 struct {
	Root treeV2 `json:"root"`
}

type stockByWarehouse struct {
	Stock map[string]int `json:"stock"`
}

type stockByWarehouseText struct {
	Stock map[string]string `json:"stock"`
}

type stockByWarehouseAny struct {
	Stock map[string]any `json:"stock"`
}

type stockByWarehouseFloat struct {
	Stock map[string]float64 `json:"stock"`
}

type stockByID struct {
	Stock map[int]string `json:"stock"`
}

func js[T any]() []byte { return For(reflect.TypeFor[T]()).JSON }

func kinds(ps []Problem) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Kind+" "+p.Pointer)
	}
	return out
}

func TestCompare(t *testing.T) {
	cases := []struct {
		name           string
		sent, required []byte
		want           []string
	}{
		{"same", js[priceV1](), js[priceV1](), nil},
		{"firer adds a field", js[priceV2Added](), js[priceV1](), nil},
		{"firer renames a field the listener requires", js[priceV2Renamed](), js[priceV1](), []string{"missing_field /price"}},
		{"listener newly requires a field", js[priceV1](), js[priceV2Added](), []string{"missing_field /currency"}},
		{"firer makes a required field optional", js[priceV2Optional](), js[priceV1](), []string{"optional_field /price"}},
		{"listener makes a field optional", js[priceV1](), js[priceV2Optional](), nil},
		{"type changed", js[priceV2Type](), js[priceV1](), []string{"type_changed /price"}},
		{"an integer is a number", js[priceInt](), js[priceV1](), nil},
		{"a number is not an integer", js[priceV1](), js[priceInt](), []string{"type_changed /price"}},
		{"nested type change", js[orderV2](), js[order](), []string{"type_changed /lines/*/price"}},
		{"listener takes anything", js[priceV1](), []byte(`true`), nil},
		{"map values, same", js[stockByWarehouse](), js[stockByWarehouse](), nil},
		{"map value type changed", js[stockByWarehouseText](), js[stockByWarehouse](), []string{"type_changed /stock/*"}},
		{"map values: an integer is a number", js[stockByWarehouse](), js[stockByWarehouseFloat](), nil},
		{"map with integer keys, value type changed", js[stockByID](), js[stockByWarehouse](), []string{"type_changed /stock/*"}},
		{"map values: any for the firer", js[stockByWarehouseAny](), js[stockByWarehouse](), []string{"type_changed /stock/*"}},
		{"map values: any for the listener", js[stockByWarehouse](), js[stockByWarehouseAny](), nil},
		{"recursive type, same", js[treeV1](), js[treeV1](), nil},
		{"recursive type changed: each change reported once", js[treeV2](), js[treeV1](), []string{"missing_field /id", "type_changed /name"}},
		{"recursive definition changed: each change reported once", js[forestV2](), js[forest](), []string{"missing_field /root/id", "type_changed /root/name"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := kinds(Compare(c.sent, c.required))
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestCheckFile(t *testing.T) {
	listener := Record{Event: "prices.changed", Service: "alerts", Role: RoleListens, Schema: js[priceV1]()}
	listener.Hash = Hash(listener.Schema)
	oldFirer := Record{Event: "prices.changed", Service: "pricing", Role: RoleFires, Schema: js[priceV1]()}
	oldFirer.Hash = Hash(oldFirer.Schema)
	published := []Record{listener, oldFirer}

	var buf bytes.Buffer
	if err := WriteFile(&buf, File{Service: "pricing", Schemas: []Record{{Event: "prices.changed", Role: RoleFires, Schema: js[priceV2Renamed]()}}}); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFile(&buf)
	if err != nil {
		t.Fatal(err)
	}
	rep := Check(f, published)
	if rep.OK() || rep.Compared != 1 || len(rep.Changed) != 1 {
		t.Fatalf("report %+v: want one breaking change against alerts", rep)
	}
	b := rep.Breaking[0]
	if b.Kind != KindMissingField || b.Pointer != "/price" || b.Firer != "pricing" || b.Listener != "alerts" {
		t.Errorf("finding %+v", b)
	}
	// The same schema as published: unchanged and compatible.
	rep = Check(File{Service: "pricing", Schemas: []Record{oldFirer}}, published)
	if !rep.OK() || len(rep.Unchanged) != 1 {
		t.Errorf("report %+v: want unchanged and OK", rep)
	}
	if got := Conflicts(append(published, Record{Event: "prices.changed", Service: "other", Role: RoleFires, Schema: js[priceV2Type](), Hash: Hash(js[priceV2Type]())})); len(got) != 1 || got[0].Firer != "other" {
		t.Errorf("conflicts %+v", got)
	}
	if _, err := ReadFile(bytes.NewReader([]byte(`{"version":1,"service":"x","schemas":[{"event":"a.b","role":"eats","schema":{}}]}`))); err == nil {
		t.Error("a bad role was accepted")
	}
}

func TestCheckFileOfAListener(t *testing.T) {
	firer := Record{Event: "prices.changed", Service: "pricing", Role: RoleFires, Schema: js[priceV1]()}
	firer.Hash = Hash(firer.Schema)
	// alerts' next build newly requires currency, which pricing does not send.
	f := File{Service: "alerts", Schemas: []Record{{Event: "prices.changed", Service: "alerts", Role: RoleListens, Schema: js[priceV2Added]()}}}
	rep := Check(f, []Record{firer})
	if len(rep.Breaking) != 1 {
		t.Fatalf("report %+v", rep)
	}
	b := rep.Breaking[0]
	if b.Kind != KindMissingField || b.Pointer != "/currency" || b.Role != RoleListens || b.Firer != "pricing" || b.Listener != "alerts" {
		t.Errorf("finding %+v", b)
	}
	// Another firer of the same role is not a counterpart.
	if rep := Check(f, []Record{{Event: "prices.changed", Service: "x", Role: RoleListens, Schema: js[priceV1]()}}); !rep.OK() || rep.Compared != 0 {
		t.Errorf("listeners compared with listeners: %+v", rep)
	}
}
