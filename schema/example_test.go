package schema_test

import (
	"fmt"
	"reflect"

	"github.com/busline/busline/schema"
)

// The firer renamed price to amount; the listener still requires price.
func ExampleCompare() {
	type listenerView struct {
		SKU   string  `json:"sku"`
		Price float64 `json:"price"`
	}
	type firerNext struct {
		SKU    string  `json:"sku"`
		Amount float64 `json:"amount"`
	}
	sent := schema.For(reflect.TypeFor[firerNext]()).JSON
	required := schema.For(reflect.TypeFor[listenerView]()).JSON
	for _, p := range schema.Compare(sent, required) {
		fmt.Println(p.Kind, p.Pointer)
	}
	// Output:
	// missing_field /price
}

// A payload that does not match names the place with a JSON pointer.
func ExampleValidator_Validate() {
	type order struct {
		ID    int      `json:"id"`
		Lines []string `json:"lines"`
	}
	v, err := schema.Compile(schema.For(reflect.TypeFor[order]()).JSON)
	if err != nil {
		panic(err)
	}
	fmt.Println(v.Validate([]byte(`{"id":1,"lines":["a",2]}`)))
	fmt.Println(v.Validate([]byte(`{"id":1,"lines":null}`)))
	// Output:
	// payload does not match the event's schema: at /lines/1: got number, want string
	// <nil>
}
