package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"reflect"
	"text/tabwriter"
)

// PrintTable writes a result's fields as a two-column table.
func PrintTable(w io.Writer, title string, v any) {
	fmt.Fprintf(w, "\n== %s\n", title)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	rv := reflect.ValueOf(v)
	rt := rv.Type()
	for i := 0; i < rt.NumField(); i++ {
		f := rv.Field(i)
		switch f.Kind() {
		case reflect.Float64:
			fmt.Fprintf(tw, "%s\t%.2f\n", rt.Field(i).Name, f.Float())
		default:
			fmt.Fprintf(tw, "%s\t%v\n", rt.Field(i).Name, f.Interface())
		}
	}
	tw.Flush()
}

// WriteJSON writes results to path.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
