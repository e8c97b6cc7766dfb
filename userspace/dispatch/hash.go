package dispatch

import (
	"strconv"
	"strings"
)

// Hash is Kamailio's dispatcher hash (ds_get_hash) over x and then y.
//
// Each key is read as big-endian 4-byte words, h += v ^ (v>>3) per word;
// the 0 to 3 bytes left are shifted into one more word (v = v<<8 + b) and
// added the same way, even when none are left. The finish is
// h = (h + h>>11) + (h>>13 + h>>23), and 0 becomes 1.
//
// Kamailio reads the bytes as C `char`, which is signed on x86: a byte of
// 0x80 or more is sign-extended to 32 bits before it is shifted or added
// (0xff counts as 0xffffffff). All arithmetic wraps at 32 bits. An empty y
// adds nothing, so it is the same as no y.
func Hash(x, y string) uint32 {
	h := hashKey(0, x)
	h = hashKey(h, y)
	h = (h + h>>11) + (h>>13 + h>>23)
	if h == 0 {
		return 1
	}
	return h
}

// hashKey folds one key into h.
func hashKey(h uint32, s string) uint32 {
	i := 0
	for ; i+4 <= len(s); i += 4 {
		v := sext(s[i])<<24 + sext(s[i+1])<<16 + sext(s[i+2])<<8 + sext(s[i+3])
		h += v ^ (v >> 3)
	}
	var v uint32
	for ; i < len(s); i++ {
		v = v<<8 + sext(s[i])
	}
	return h + (v ^ (v >> 3))
}

// sext sign-extends a byte the way a signed C char is promoted to int.
func sext(b byte) uint32 { return uint32(int32(int8(b))) }

// URIKey is the part of a SIP URI the URI-hashing algorithms (1, 2, 3) use.
// Host is as written in the URI (an IPv6 reference keeps its brackets).
type URIKey struct {
	User string
	Host string
	Port int // 0 when the URI has no port
	// PortText is the port as written ("05080"); empty means Port printed.
	PortText string
	Secure   bool // sips: URI
	// Tel marks a tel: URI. Kamailio parses one with the number as the
	// user and an empty host, and hashes it; any other URI without a host
	// has no key.
	Tel bool
}

// URIHashKeys returns the two hash keys of a URI (get_uri_hash_keys):
// k1 is the user, k2 the host, or host:port when the URI has a port other
// than 5060 (5061 for sips:). The port is hashed as written (PortText), as
// Kamailio copies it: "05080" and "5080" hash differently. userOnly
// (modparam flags bit 1) leaves k2 empty.
func URIHashKeys(u URIKey, userOnly bool) (k1, k2 string) {
	if userOnly {
		return u.User, ""
	}
	def := portSIP
	if u.Secure {
		def = portSIPS
	}
	if u.Port != 0 && u.Port != def {
		port := u.PortText
		if port == "" {
			port = strconv.Itoa(u.Port)
		}
		return u.User, u.Host + ":" + port
	}
	return u.User, u.Host
}

// trimKey trims what Kamailio's trim() does: spaces, tabs, CR and LF.
func trimKey(s string) string { return strings.Trim(s, " \t\r\n") }
