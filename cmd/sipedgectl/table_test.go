package main

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestWriteTable(t *testing.T) {
	tests := []struct {
		name   string
		method string
		result string
		want   string
	}{
		{
			name:   "dispatcher.list",
			method: "dispatcher.list",
			result: `{"NRSETS":2,"RECORDS":[
				{"SET":{"ID":1,"TARGETS":[
					{"DEST":{"IDX":0,"URI":"sip:10.0.0.2:5060","FLAGS":"AP","PRIORITY":5,"IUID":"dspt-1","ATTRS":{"BODY":"duid=gw2;weight=50","DUID":"gw2"}}},
					{"DEST":{"IDX":1,"URI":"sip:10.0.0.1","FLAGS":"IX","PRIORITY":0,"IUID":"dspt-2"}}]}},
				{"SET":{"ID":20,"TARGETS":[
					{"DEST":{"IDX":0,"URI":"sip:gw.example.com;transport=tcp","FLAGS":"TP","PRIORITY":10,"ATTRS":{"BODY":null}}}]}}]}`,
			want: "" +
				"SET  IDX  URI                               FLAGS  PRIORITY  ATTRS\n" +
				"1    0    sip:10.0.0.2:5060                 AP     5         duid=gw2;weight=50\n" +
				"1    1    sip:10.0.0.1                      IX     0\n" +
				"20   0    sip:gw.example.com;transport=tcp  TP     10\n",
		},
		{
			name:   "dispatcher.list with LATENCY",
			method: "dispatcher.list",
			result: `{"NRSETS":1,"RECORDS":[
				{"SET":{"ID":1,"TARGETS":[
					{"DEST":{"IDX":0,"URI":"sip:10.0.0.2:5060","FLAGS":"AP","PRIORITY":5,"IUID":"dspt-1","ATTRS":{"BODY":"duid=gw2"},
						"LATENCY":{"AVG":20.1,"STD":1.27,"EST":21.4,"MAX":132,"TIMEOUT":3}}},
					{"DEST":{"IDX":1,"URI":"sip:10.0.0.1","FLAGS":"IX","PRIORITY":0,"IUID":"dspt-2",
						"LATENCY":{"AVG":0,"STD":0,"EST":0,"MAX":0,"TIMEOUT":0}}}]}}]}`,
			want: "" +
				"SET  IDX  URI                FLAGS  PRIORITY  AVG   STD   EST   MAX  TIMEOUT  ATTRS\n" +
				"1    0    sip:10.0.0.2:5060  AP     5         20.1  1.27  21.4  132  3        duid=gw2\n" +
				"1    1    sip:10.0.0.1       IX     0         0     0     0     0    0\n",
		},
		{
			name:   "dispatcher.list with RUNTIME",
			method: "dispatcher.list",
			result: `{"NRSETS":1,"RECORDS":[
				{"SET":{"ID":1,"TARGETS":[
					{"DEST":{"IDX":0,"URI":"sip:10.0.0.2:5060","FLAGS":"AP","PRIORITY":5,"IUID":"dspt-1","ATTRS":{"BODY":"duid=gw2;maxload=9"},
						"RUNTIME":{"DLGLOAD":7}}},
					{"DEST":{"IDX":1,"URI":"sip:10.0.0.1","FLAGS":"IX","PRIORITY":0,"IUID":"dspt-2","RUNTIME":{"DLGLOAD":0}}}]}}]}`,
			want: "" +
				"SET  IDX  URI                FLAGS  PRIORITY  DLGLOAD  ATTRS\n" +
				"1    0    sip:10.0.0.2:5060  AP     5         7        duid=gw2;maxload=9\n" +
				"1    1    sip:10.0.0.1       IX     0         0\n",
		},
		{
			name:   "object as key/value in server order",
			method: "core.uptime",
			result: `{"now":"Wed Mar  4 06:36:08 2026","up_since":"Wed Mar  4 05:06:07 2026","uptime":5401}`,
			want: "" +
				"KEY       VALUE\n" +
				"now       Wed Mar  4 06:36:08 2026\n" +
				"up_since  Wed Mar  4 05:06:07 2026\n" +
				"uptime    5401\n",
		},
		{
			name:   "nested object as its own table, deeper values compact, null empty",
			method: "x",
			result: `{"b":{"z": 1, "a": [1, 2]},"a":null,"c":true}`,
			want: "" +
				"KEY  VALUE\n" +
				"a\n" +
				"c    true\n" +
				"\nb:\n" +
				"KEY  VALUE\n" +
				"z    1\n" +
				"a    [1,2]\n",
		},
		{
			name:   "fastpath.stats: scalars, then a table per array of objects",
			method: "fastpath.stats",
			result: `{"attached":true,"forwarded":7,"pass_reasons":[{"reason":"PASS_FIB","count":2}],"drop_reasons":[],"listeners":[{"name":"edge","rx":9,"passed":2}]}`,
			want: "" +
				"KEY           VALUE\n" +
				"attached      true\n" +
				"forwarded     7\n" +
				"drop_reasons  []\n" +
				"\npass_reasons:\n" +
				"reason    count\n" +
				"PASS_FIB  2\n" +
				"\nlisteners:\n" +
				"name  rx  passed\n" +
				"edge  9   2\n",
		},
		{
			name:   "array of objects, union of keys",
			method: "x",
			result: `[{"id":1,"uri":"sip:a"},{"id":2,"state":"down\tnow"}]`,
			want: "" +
				"id  uri    state\n" +
				"1   sip:a\n" +
				`2          down\tnow` + "\n",
		},
		{
			name:   "array of scalars",
			method: "system.listMethods",
			result: `["core.uptime","core.version"]`,
			want:   "VALUE\ncore.uptime\ncore.version\n",
		},
		{name: "empty array", method: "x", result: `[]`, want: "(empty)\n"},
		{name: "empty object", method: "x", result: `{}`, want: "(empty)\n"},
		{name: "string", method: "dispatcher.reload", result: `"Ok. Dispatcher successfully reloaded."`, want: "Ok. Dispatcher successfully reloaded.\n"},
		{name: "number", method: "x", result: `42`, want: "42\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeTable(&b, tc.method, json.RawMessage(tc.result)); err != nil {
				t.Fatal(err)
			}
			if got := b.String(); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}
