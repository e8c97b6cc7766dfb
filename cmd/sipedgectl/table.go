package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// writeTable prints a result for people: dispatcher.list as one row per
// destination; any other object as KEY VALUE rows, followed by one titled
// table for each member that is itself an array of objects or an object
// (fastpath.stats: reasons, listeners, destinations); an array of objects
// as one row per element with the union of their keys as columns; an array
// of scalars as one VALUE column; a scalar as itself. Keys keep the
// server's order. Deeper values print as compact JSON.
func writeTable(w io.Writer, method string, result json.RawMessage) error {
	var rows [][]string
	var err error
	switch {
	case method == "dispatcher.list" && isObject(result):
		rows, err = dispatcherRows(result)
	case isObject(result):
		return writeSections(w, result)
	case isArray(result):
		rows, err = arrayRows(result)
	default:
		_, err = fmt.Fprintln(w, cell(result))
		return err
	}
	if err != nil {
		return err
	}
	if len(rows) <= 1 {
		_, err = fmt.Fprintln(w, "(empty)")
		return err
	}
	return render(w, rows)
}

// dispatcherRows flattens {"NRSETS":n,"RECORDS":[{"SET":{"ID":g,
// "TARGETS":[{"DEST":{...}}]}}]} into SET IDX URI FLAGS PRIORITY ATTRS;
// when any destination has LATENCY (ds_ping_latency_stats), its AVG STD
// EST MAX TIMEOUT (ms) come before ATTRS, and when any has RUNTIME (call
// load on), its DLGLOAD.
func dispatcherRows(result json.RawMessage) ([][]string, error) {
	var list struct {
		Records []struct {
			Set struct {
				ID      json.RawMessage `json:"ID"`
				Targets []struct {
					Dest struct {
						IDX      json.RawMessage `json:"IDX"`
						URI      json.RawMessage `json:"URI"`
						Flags    json.RawMessage `json:"FLAGS"`
						Priority json.RawMessage `json:"PRIORITY"`
						Attrs    struct {
							Body json.RawMessage `json:"BODY"`
						} `json:"ATTRS"`
						Latency *struct {
							Avg     json.RawMessage `json:"AVG"`
							Std     json.RawMessage `json:"STD"`
							Est     json.RawMessage `json:"EST"`
							Max     json.RawMessage `json:"MAX"`
							Timeout json.RawMessage `json:"TIMEOUT"`
						} `json:"LATENCY"`
						Runtime *struct {
							DLGLoad json.RawMessage `json:"DLGLOAD"`
						} `json:"RUNTIME"`
					} `json:"DEST"`
				} `json:"TARGETS"`
			} `json:"SET"`
		} `json:"RECORDS"`
	}
	if err := json.Unmarshal(result, &list); err != nil {
		return nil, fmt.Errorf("not a dispatcher.list result: %w", err)
	}
	latency, load := false, false
	for _, rec := range list.Records {
		for _, t := range rec.Set.Targets {
			latency = latency || t.Dest.Latency != nil
			load = load || t.Dest.Runtime != nil
		}
	}
	head := []string{"SET", "IDX", "URI", "FLAGS", "PRIORITY"}
	if latency {
		head = append(head, "AVG", "STD", "EST", "MAX", "TIMEOUT")
	}
	if load {
		head = append(head, "DLGLOAD")
	}
	rows := [][]string{append(head, "ATTRS")}
	for _, rec := range list.Records {
		for _, t := range rec.Set.Targets {
			d := t.Dest
			row := []string{cell(rec.Set.ID), cell(d.IDX), cell(d.URI), cell(d.Flags), cell(d.Priority)}
			switch {
			case d.Latency != nil:
				l := d.Latency
				row = append(row, cell(l.Avg), cell(l.Std), cell(l.Est), cell(l.Max), cell(l.Timeout))
			case latency:
				row = append(row, "", "", "", "", "")
			}
			switch {
			case d.Runtime != nil:
				row = append(row, cell(d.Runtime.DLGLoad))
			case load:
				row = append(row, "")
			}
			rows = append(rows, append(row, cell(d.Attrs.Body)))
		}
	}
	return rows, nil
}

// writeSections prints an object's scalar members as KEY VALUE rows, then
// each member that is an array of objects or an object as its own table
// under the member's name.
func writeSections(w io.Writer, result json.RawMessage) error {
	fields, err := objectFields(result)
	if err != nil {
		return err
	}
	scalars := [][]string{{"KEY", "VALUE"}}
	type section struct {
		title string
		rows  [][]string
	}
	var sections []section
	for _, f := range fields {
		switch {
		case isArray(f.val) && arrayOfObjects(f.val):
			rows, err := arrayRows(f.val)
			if err != nil {
				return err
			}
			sections = append(sections, section{f.key, rows})
		case isObject(f.val):
			rows, err := objectRows(f.val)
			if err != nil {
				return err
			}
			sections = append(sections, section{f.key, rows})
		default:
			scalars = append(scalars, []string{f.key, cell(f.val)})
		}
	}
	if len(scalars) == 1 && len(sections) == 0 {
		_, err := fmt.Fprintln(w, "(empty)")
		return err
	}
	if len(scalars) > 1 {
		if err := render(w, scalars); err != nil {
			return err
		}
	}
	for _, sec := range sections {
		if len(sec.rows) <= 1 {
			continue
		}
		if _, err := fmt.Fprintf(w, "\n%s:\n", sec.title); err != nil {
			return err
		}
		if err := render(w, sec.rows); err != nil {
			return err
		}
	}
	return nil
}

// arrayOfObjects reports whether raw is a non-empty array whose elements
// are all objects.
func arrayOfObjects(raw json.RawMessage) bool {
	var elems []json.RawMessage
	if json.Unmarshal(raw, &elems) != nil || len(elems) == 0 {
		return false
	}
	for _, e := range elems {
		if !isObject(e) {
			return false
		}
	}
	return true
}

func objectRows(result json.RawMessage) ([][]string, error) {
	fields, err := objectFields(result)
	if err != nil {
		return nil, err
	}
	rows := [][]string{{"KEY", "VALUE"}}
	for _, f := range fields {
		rows = append(rows, []string{f.key, cell(f.val)})
	}
	return rows, nil
}

func arrayRows(result json.RawMessage) ([][]string, error) {
	var elems []json.RawMessage
	if err := json.Unmarshal(result, &elems); err != nil {
		return nil, err
	}
	allObjects := len(elems) > 0
	for _, e := range elems {
		allObjects = allObjects && isObject(e)
	}
	if !allObjects {
		rows := [][]string{{"VALUE"}}
		for _, e := range elems {
			rows = append(rows, []string{cell(e)})
		}
		return rows, nil
	}

	var columns []string
	index := map[string]int{}
	var objects [][]field
	for _, e := range elems {
		fields, err := objectFields(e)
		if err != nil {
			return nil, err
		}
		for _, f := range fields {
			if _, ok := index[f.key]; !ok {
				index[f.key] = len(columns)
				columns = append(columns, f.key)
			}
		}
		objects = append(objects, fields)
	}
	rows := [][]string{columns}
	for _, fields := range objects {
		row := make([]string, len(columns))
		for _, f := range fields {
			row[index[f.key]] = cell(f.val)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// render aligns rows in columns two spaces apart, without trailing blanks.
func render(w io.Writer, rows [][]string) error {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, row := range rows {
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var out strings.Builder
	for line := range strings.Lines(b.String()) {
		out.WriteString(strings.TrimRight(line, " \n"))
		out.WriteByte('\n')
	}
	_, err := io.WriteString(w, out.String())
	return err
}

// cell renders one value: strings unquoted, null and absent empty, numbers
// and booleans as written, objects and arrays as compact JSON. Tabs and
// newlines are escaped so they cannot break the table.
func cell(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	switch raw[0] {
	case '"':
		if json.Unmarshal(raw, &s) != nil {
			s = string(raw)
		}
	case '{', '[':
		var b bytes.Buffer
		if json.Compact(&b, raw) != nil {
			s = string(raw)
		} else {
			s = b.String()
		}
	default:
		s = string(raw)
	}
	return strings.NewReplacer("\t", `\t`, "\n", `\n`, "\r", `\r`).Replace(s)
}

// field is one member of a JSON object, in document order.
type field struct {
	key string
	val json.RawMessage
}

// objectFields returns an object's members in the order the server sent
// them (encoding/json maps would sort them).
func objectFields(raw json.RawMessage) ([]field, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	var fields []field
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, err
		}
		fields = append(fields, field{key: key, val: val})
	}
	return fields, nil
}

func isObject(raw json.RawMessage) bool { return firstByte(raw) == '{' }
func isArray(raw json.RawMessage) bool  { return firstByte(raw) == '[' }

func firstByte(raw json.RawMessage) byte {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}
