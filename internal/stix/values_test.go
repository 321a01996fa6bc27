package stix

import "testing"

func TestTimestamps(t *testing.T) {
	for s, ok := range map[string]bool{
		"2016-01-20T12:31:12.123Z":        true,
		"2016-01-20T12:31:12Z":            true,
		"2016-01-20T12:31:12.1Z":          true,
		"2016-01-20T12:31:12.1234567890Z": true,
		"2016-02-29T00:00:00Z":            true,
		"2015-02-29T00:00:00Z":            false, // not a leap year
		"2016-01-20T24:00:00Z":            false,
		"2016-01-20T12:31:12.Z":           false,
		"2016-01-20T12:31:12.123+00:00":   false,
		"2016-01-20T12:31:12.123z":        false,
		"2016-01-20t12:31:12.123Z":        false,
		"2016-01-20 12:31:12.123Z":        false,
		"2016-01-20":                      false,
		"20160120T123112Z":                false,
		"":                                false,
	} {
		if _, p := parseTimestamp(s); (p == "") != ok {
			t.Errorf("%q: problem %q, want ok=%v", s, p, ok)
		}
	}
	ts := func(s string) timestamp {
		t.Helper()
		v, p := parseTimestamp(s)
		if p != "" {
			t.Fatal(p)
		}
		return v
	}
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"2016-01-20T12:31:12Z", "2016-01-20T12:31:12.000Z", 0},
		{"2016-01-20T12:31:12.1Z", "2016-01-20T12:31:12.09999999999Z", 1},
		{"2016-01-20T12:31:12.999Z", "2016-01-20T12:31:13Z", -1},
		{"2015-12-31T23:59:59.999Z", "2016-01-01T00:00:00Z", -1},
	} {
		if got := ts(c.a).compare(ts(c.b)); got != c.want {
			t.Errorf("compare(%s, %s) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestIdentifiers(t *testing.T) {
	for s, typ := range map[string]string{
		"indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f":   "indicator",
		"ipv4-addr--28bb3599-77cd-5a82-a950-b5bc3caf07c4":   "ipv4-addr", // v5
		"x-acme--00000000-0000-1000-8000-000000000000":      "x-acme",    // v1
		"x-acme--017f22e2-79b0-7cc3-98c4-dc0c0c07398f":      "x-acme",    // v7
		"indicator--00000000-0000-0000-0000-000000000000":   "",          // nil UUID
		"indicator--8e2e2d2b-17d4-0cbf-938f-98ee46b3cd3f":   "",          // version 0
		"indicator--8e2e2d2b-17d4-4cbf-c38f-98ee46b3cd3f":   "",          // variant 110 (Microsoft)
		"indicator--8e2e2d2b17d44cbf938f98ee46b3cd3f":       "",
		"indicator--{8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f}": "",
		"indicator-8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f":    "",
		"Indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f":   "",
		"--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f":            "",
		"indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3g":   "",
		"indicator---8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f":  "",
		"in--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f":          "",
		"indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f ":  "",
	} {
		got, p := identifierProblem(s)
		if got != typ || (p == "") != (typ != "") {
			t.Errorf("%q: got %q %q, want type %q", s, got, p, typ)
		}
	}
}

func TestSmallValues(t *testing.T) {
	for s, ok := range map[string]bool{"en": true, "de-CH": true, "zh-Hant-TW": true, "x-klingon": true,
		"es-419": true, "": false, "en_US": false, "e1": false, "en--US": false, "toolongtag": false, "en-": false} {
		if (langProblem(s) == "") != ok {
			t.Errorf("lang %q: want ok=%v", s, ok)
		}
	}
	for s, ok := range map[string]bool{"": true, "00ff": true, "0": false, "0A": false, "zz": false} {
		if (hexProblem(s) == "") != ok {
			t.Errorf("hex %q: want ok=%v", s, ok)
		}
	}
	for s, ok := range map[string]bool{"": true, "QQ==": true, "QUI=": true, "QUJD": true, "QQ=": false,
		"Q===": false, "QQ=A": false, "QU JD": false, "QUJD\n": false, "QU-_": false} {
		if (base64Problem(s) == "") != ok {
			t.Errorf("base64 %q: want ok=%v", s, ok)
		}
	}
	for raw, ok := range map[string]bool{"0": true, "100": true, "-1": false, "101": false, "1.0": false,
		"1e2": false, "9007199254740992": false} {
		if (integerProblem(raw, 0, 100) == "") != ok {
			t.Errorf("integer %s: want ok=%v", raw, ok)
		}
	}
	if integerProblem("9007199254740992", -maxInt, maxInt) == "" || integerProblem("9007199254740991", -maxInt, maxInt) != "" {
		t.Error("integer range ±(2^53-1)")
	}
	for raw, ok := range map[string]bool{"90": true, "-90.0": true, "9e1": true, "90.0001": false, "1e400": false} {
		if (floatProblem(raw, -90, 90) == "") != ok {
			t.Errorf("float %s: want ok=%v", raw, ok)
		}
	}
}
