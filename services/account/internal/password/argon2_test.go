package password

import "testing"

func TestHashVerify(t *testing.T) {
	a := Argon2id{Params: Params{Memory: 1024, Time: 1, Threads: 1}}
	h, err := a.Hash("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		password string
		want     bool
	}{
		{"correct horse battery", true},
		{"correct horse batterY", false},
		{"", false},
	}
	for _, tt := range tests {
		ok, err := a.Verify(tt.password, h)
		if err != nil || ok != tt.want {
			t.Errorf("Verify(%q) = %v, %v; want %v", tt.password, ok, err, tt.want)
		}
	}
	h2, _ := a.Hash("correct horse battery")
	if h == h2 {
		t.Error("two hashes of one password are equal; the salt is not random")
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=1,t=1,p=1$AA$AA", "$argon2id$v=19$m=99999999,t=1,p=1$AA$AA", "$argon2id$v=19$m=1024,t=1,p=1$!!$AA"} {
		if _, err := a.Verify("x", bad); err == nil {
			t.Errorf("Verify(x, %q) = nil error, want an error", bad)
		}
	}
}
