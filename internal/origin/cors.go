package origin

import "net/http"

// CORS applies CORS to a credentialed request: with no Origin header (not a
// browser cross-origin request) it allows and writes nothing; with an
// allowed Origin it sets the exact Access-Control-Allow-Origin (never "*",
// never an unchecked reflection) and allows credentials. It always adds
// Vary: Origin. It returns false for a disallowed Origin, having written no
// response: the caller records the refusal and answers 403.
func CORS(w http.ResponseWriter, r *http.Request, allow func(string) bool) bool {
	o := r.Header.Get("Origin")
	h := w.Header()
	h.Add("Vary", "Origin")
	if o == "" {
		return true
	}
	if !allow(o) {
		return false
	}
	h.Set("Access-Control-Allow-Origin", o)
	h.Set("Access-Control-Allow-Credentials", "true")
	return true
}

// Preflight answers a CORS preflight (OPTIONS): 204 with the allowed
// methods and headers for an allowed Origin, 403 otherwise. It returns
// false when it refused an Origin that was present (the caller records it).
func Preflight(w http.ResponseWriter, r *http.Request, allow func(string) bool, methods, headers string) bool {
	if r.Header.Get("Origin") == "" {
		w.Header().Add("Vary", "Origin")
		w.WriteHeader(http.StatusForbidden)
		return true
	}
	if !CORS(w, r, allow) {
		w.WriteHeader(http.StatusForbidden)
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", methods)
	h.Set("Access-Control-Allow-Headers", headers)
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return true
}
