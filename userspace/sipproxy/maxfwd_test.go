package sipproxy

import "testing"

func TestAppendPadded(t *testing.T) {
	tests := []struct {
		name  string
		v     int
		width int
		want  string
	}{
		{"70 to 69", 69, 2, "69"},
		{"10 to 9 keeps the width", 9, 2, " 9"},
		{"1 to 0", 0, 1, "0"},
		{"leading zeros 0068", 67, 4, "  67"},
		{"255 to 254", 254, 3, "254"},
		{"100 to 99", 99, 3, " 99"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(appendPadded(nil, tc.v, tc.width)); got != tc.want {
				t.Errorf("appendPadded(%d, %d) = %q, want %q", tc.v, tc.width, got, tc.want)
			}
		})
	}
}
