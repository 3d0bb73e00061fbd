package snp

import (
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"strings"
)

// endorsement is what AMD's key distribution service writes in a VCEK's
// or VLEK's extensions: the product, the chip (VCEK) or cloud provider
// (VLEK), and the TCB the key was derived for.
//
// go-sev-guest reads these too, but not a Turin VCEK's (it has an FMC
// patch level and an 8-byte HWID), so they are read here.
type endorsement struct {
	ProductLine string // "Milan", "Genoa", "Turin"
	HWID        []byte // VCEK: the chip's id
	CSPID       string // VLEK: the cloud provider's
	TCB         TCB    // composed in the product's layout
}

// The extensions, under AMD's arc 1.3.6.1.4.1.3704.1.
var (
	oidAMD         = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1}
	oidProductName = append(oidAMD[:len(oidAMD):len(oidAMD)], 2)
	oidHWID        = append(oidAMD[:len(oidAMD):len(oidAMD)], 4)
	oidCSPID       = append(oidAMD[:len(oidAMD):len(oidAMD)], 5)
)

// Patch levels, by the last arc of 1.3.6.1.4.1.3704.1.3.n.
const (
	splBootLoader = 1
	splTEE        = 2
	splSNP        = 3
	splMicrocode  = 8
	splFMC        = 9 // Turin and later
)

// splNames are the patch levels' names, as AMD's documents give them.
var splNames = map[int]string{splBootLoader: "bootloader", splTEE: "tee", splSNP: "snp", splMicrocode: "microcode", splFMC: "fmc"}

// tcbByte says where each patch level goes in a product's TCB_VERSION
// (spl_4 to spl_7 are Milan's and Genoa's reserved bytes 2 to 5, spl_5 to
// spl_7 Turin's 4 to 6).
var tcbByte = map[string]map[int]int{
	"Milan": {splBootLoader: 0, splTEE: 1, 4: 2, 5: 3, 6: 4, 7: 5, splSNP: 6, splMicrocode: 7},
	"Genoa": {splBootLoader: 0, splTEE: 1, 4: 2, 5: 3, 6: 4, 7: 5, splSNP: 6, splMicrocode: 7},
	"Turin": {splFMC: 0, splBootLoader: 1, splTEE: 2, splSNP: 3, 5: 4, 6: 5, 7: 6, splMicrocode: 7},
}

// readEndorsement reads cert's KDS extensions.
func readEndorsement(cert *x509.Certificate) (*endorsement, error) {
	var e endorsement
	spl := map[int]uint8{}
	var product string
	for _, x := range cert.Extensions {
		var err error
		switch id := x.Id; {
		case id.Equal(oidProductName):
			err = unmarshal(x.Value, &product, "ia5")
		case id.Equal(oidHWID):
			e.HWID, err = hwid(x.Value)
		case id.Equal(oidCSPID):
			err = unmarshal(x.Value, &e.CSPID, "ia5")
		case len(id) == len(oidAMD)+2 && id[:len(oidAMD)].Equal(oidAMD) && id[len(oidAMD)] == 3:
			var v int
			if err = unmarshal(x.Value, &v, ""); err == nil && (v < 0 || v > 255) {
				err = fmt.Errorf("%d is no patch level", v)
			}
			spl[id[len(id)-1]] = uint8(v)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("extension %v: %w", x.Id, err)
		}
	}
	if product == "" {
		return nil, fmt.Errorf("no product name extension (%v): not a VCEK or VLEK", oidProductName)
	}
	e.ProductLine, _, _ = strings.Cut(product, "-") // "Milan-B0": the line, then the stepping
	layout, ok := tcbByte[e.ProductLine]
	if !ok {
		return nil, fmt.Errorf("product %q: not one this verifier knows (Milan, Genoa, Turin)", product)
	}
	for n, level := range spl {
		i, ok := layout[n]
		if !ok {
			return nil, fmt.Errorf("a patch level (1.3.6.1.4.1.3704.1.3.%d) a %s has none of", n, e.ProductLine)
		}
		e.TCB |= TCB(level) << (8 * i)
	}
	return &e, nil
}

// unmarshal reads one ASN.1 value that fills b.
func unmarshal(b []byte, v any, params string) error {
	rest, err := asn1.UnmarshalWithParams(b, v, params)
	if err == nil && len(rest) > 0 {
		err = fmt.Errorf("%d bytes after the value", len(rest))
	}
	return err
}

// hwid reads the HWID extension: AMD writes the bytes bare (64 of them on
// Milan and Genoa), or as an OCTET STRING.
func hwid(b []byte) ([]byte, error) {
	var id []byte
	if len(b) != 64 && unmarshal(b, &id, "") == nil {
		b = id
	}
	if len(b) == 0 || len(b) > 64 {
		return nil, fmt.Errorf("an HWID of %d bytes", len(b))
	}
	return append([]byte(nil), b...), nil
}
