package usage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// priceFields are the fields of a prices file, for error messages.
const priceFields = "currency, cpu_hour, memory_gb_hour, instance_hour, bandwidth_gb, addon_hour, database_gb_month"

// LoadPrices reads a prices file (skiff server --prices): JSON or YAML
// with the fields of skiff.Prices. docs/usage.md shows one.
func LoadPrices(path string) (skiff.Prices, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return skiff.Prices{}, fmt.Errorf("prices file: %w", err)
	}
	p, err := ParsePrices(data)
	if err != nil {
		return p, fmt.Errorf("prices file %s: %w", path, err)
	}
	return p, nil
}

// ParsePrices reads prices written as JSON or YAML (JSON is YAML too), and
// checks them. Unknown fields are refused: a misspelt price would
// otherwise be free.
func ParsePrices(data []byte) (skiff.Prices, error) {
	var p skiff.Prices
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return p, fmt.Errorf("not JSON or YAML: %v", err)
	}
	if doc == nil {
		doc = map[string]any{} // an empty file: everything free
	}
	js, err := json.Marshal(doc)
	if err != nil {
		return p, fmt.Errorf("not a map of prices: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		msg := strings.TrimPrefix(err.Error(), "json: ")
		return p, fmt.Errorf("%s (the fields are %s; docs/usage.md shows an example)", msg, priceFields)
	}
	if p.Currency == "" {
		p.Currency = skiff.DefaultCurrency
	}
	return p, p.Validate()
}
