package socketio

import (
	"crypto/rand"
	"encoding/base64"
)

// sid is an Engine.IO session id: 128 random bits, base64url-encoded on the
// wire (22 characters). A session keeps the bits, not the text: no string
// allocation per session, and the registry's key is the array itself.
type sid [16]byte

// sidLen is the length of an encoded sid.
const sidLen = 22

// sidEncoding decodes strictly: of the 4 spellings of 128 bits in 22
// characters (the last one carries 2 unused bits), only the one the server
// sent names the session.
var sidEncoding = base64.RawURLEncoding.Strict()

func newSID() sid {
	var id sid
	_, _ = rand.Read(id[:])
	return id
}

// appendTo appends the encoded id.
func (id *sid) appendTo(b []byte) []byte { return sidEncoding.AppendEncode(b, id[:]) }

// parseSID decodes the sid of a request; false when it cannot name a
// session.
func parseSID(s string) (sid, bool) {
	var id sid
	if len(s) != sidLen {
		return id, false
	}
	n, err := sidEncoding.Decode(id[:], []byte(s))
	return id, err == nil && n == len(id)
}

// newID returns a random 128-bit id, base64url-encoded (22 characters): the
// id of a socket in its CONNECT reply.
func newID() string {
	id := newSID()
	return string(id.appendTo(nil))
}

// lookup finds the session of a request's sid.
func (s *Server) lookup(sidText string) *session {
	id, ok := parseSID(sidText)
	if !ok {
		return nil
	}
	ss, _ := s.reg.Get(id)
	return ss
}
