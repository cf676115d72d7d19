// Package deliverytest holds local servers that speak the protocols Parley
// delivers to, for tests: FCM's HTTP v1 API with its OAuth2 token endpoint,
// APNs over HTTP/2 with token authentication, a Standard Webhooks receiver
// that checks signatures with the specification's reference library, and a
// pre-send hook. Each checks the requests it gets as the real service would
// (authentication, headers, body shape), records them, and answers as a
// test scripts it. They serve HTTPS with a certificate from a test CA that
// InstallCA makes the process trust through SSL_CERT_FILE, as Parley trusts
// the system roots.
package deliverytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// CA is a certificate authority for test servers.
type CA struct {
	// Path is the CA certificate's PEM file.
	Path string
	// server is the certificate of 127.0.0.1, [::1] and localhost.
	server tls.Certificate
}

// InstallCA makes a CA in a new temporary directory and points
// SSL_CERT_FILE at it, so that the process trusts the servers of this
// package (and no others: the variable replaces the system roots). Call it
// from TestMain before anything in the process uses TLS: Go reads the
// system roots once. cleanup removes the directory.
func InstallCA() (ca *CA, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "deliverytest-ca")
	if err != nil {
		return nil, nil, err
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	ca, err = newCA(dir)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	if err := os.Setenv("SSL_CERT_FILE", ca.Path); err != nil {
		cleanup()
		return nil, nil, err
	}
	return ca, cleanup, nil
}

// newCA writes a CA certificate to dir and issues a server certificate.
func newCA(dir string) (*CA, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "deliverytest CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("issue server certificate: %w", err)
	}
	return &CA{Path: path, server: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}, nil
}

// serverTLS is the TLS configuration of this package's servers: HTTP/2 and
// HTTP/1.1.
func (ca *CA) serverTLS() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{ca.server}, NextProtos: []string{"h2", "http/1.1"}}
}
