package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

const (
	minRSABits      = 2048
	maxKeyFileBytes = 1 << 20
)

// loadPublicKeys reads every public key or certificate from a PEM file.
func loadPublicKeys(path string) ([]crypto.PublicKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: PublicKeyFile: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("auth: PublicKeyFile: %w", err)
	}
	if len(data) > maxKeyFileBytes {
		return nil, fmt.Errorf("auth: PublicKeyFile %s is larger than %d bytes", path, maxKeyFileBytes)
	}
	keys, err := parsePublicKeys(data)
	if err != nil {
		return nil, fmt.Errorf("auth: PublicKeyFile %s: %w", path, err)
	}
	return keys, nil
}

// parsePublicKeys decodes PEM blocks: PUBLIC KEY (PKIX), RSA PUBLIC KEY
// (PKCS #1) and CERTIFICATE. Private keys are refused so that a secret never
// ends up in a file meant to be public.
func parsePublicKeys(data []byte) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var (
			key any
			err error
		)
		switch {
		case block.Type == "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case block.Type == "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case block.Type == "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				key = cert.PublicKey
			}
		case strings.Contains(block.Type, "PRIVATE KEY"):
			return nil, fmt.Errorf("PEM block %d is a private key; configure the public key only", n)
		default:
			return nil, fmt.Errorf("PEM block %d: unsupported type %q", n, block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %d (%s): %w", n, block.Type, err)
		}
		if err := checkPublicKey(key); err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM-encoded public key found")
	}
	return keys, nil
}

// checkPublicKey accepts the key types and sizes Herald verifies with.
func checkPublicKey(key any) error {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key has %d bits, need at least %d", k.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey:
		if ecdsaAlg(k) == "" {
			return fmt.Errorf("unsupported ECDSA curve %s", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return errors.New("invalid Ed25519 key length")
		}
	default:
		return fmt.Errorf("unsupported public key type %T", key)
	}
	return nil
}

// ecdsaAlg is the only JWS algorithm for a curve (RFC 7518 §3.4).
func ecdsaAlg(k *ecdsa.PublicKey) string {
	switch k.Curve {
	case elliptic.P256():
		return "ES256"
	case elliptic.P384():
		return "ES384"
	case elliptic.P521():
		return "ES512"
	}
	return ""
}

// algsForKey lists the algorithms a key can verify.
func algsForKey(key crypto.PublicKey) []string {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return rsaAlgs
	case *ecdsa.PublicKey:
		if a := ecdsaAlg(k); a != "" {
			return []string{a}
		}
	case ed25519.PublicKey:
		return []string{"EdDSA"}
	}
	return nil
}

// keyFits reports whether key may verify a token signed with alg: the key
// type must match the algorithm family, and ECDSA curves must match exactly.
// This is what makes algorithm/key confusion impossible.
func keyFits(key any, alg string) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return familyOf(alg) == famRSA && k.N.BitLen() >= minRSABits
	case *ecdsa.PublicKey:
		return familyOf(alg) == famECDSA && ecdsaAlg(k) == alg
	case ed25519.PublicKey:
		return alg == "EdDSA" && len(k) == ed25519.PublicKeySize
	}
	return false
}
