package bus

import "encoding/json"

// Codec turns payloads into bytes and back. The default is JSON.
type Codec interface {
	// ContentType is written to the content-type metadata of every event.
	ContentType() string
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSONCodec encodes payloads with encoding/json.
type JSONCodec struct{}

// ContentType implements Codec.
func (JSONCodec) ContentType() string { return "application/json" }

// Marshal implements Codec.
func (JSONCodec) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal implements Codec.
func (JSONCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
