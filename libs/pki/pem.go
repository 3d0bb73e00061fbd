package pki

import "encoding/pem"

// pemBlock returns the bytes of the first PEM block of type typ, or nil.
func pemBlock(b []byte, typ string) []byte {
	p, _ := pem.Decode(b)
	if p == nil || p.Type != typ {
		return nil
	}
	return p.Bytes
}
