# Sourced by scripts that use Go programs as tools (helm, kubeconform,
# cyclonedx-gomod). go_tool BINARY PACKAGE VERSION installs PACKAGE@VERSION
# through the Go module proxy into $(go env GOPATH)/bin unless the binary
# there is already that version, and puts that directory first on PATH.
# The project's go.mod is left alone (the install runs outside the module).
go_tool() {
  local gobin
  gobin=$(go env GOPATH)/bin
  case ":$PATH:" in *":$gobin:"*) ;; *) export PATH="$gobin:$PATH" ;; esac
  if ! go version -m "$gobin/$1" 2>/dev/null | grep -q "	mod	.*	$3	"; then
    echo "go install $2@$3 (once per machine; helm takes minutes)" >&2
    (cd / && GOFLAGS=-mod=mod go install "$2@$3")
  fi
}
