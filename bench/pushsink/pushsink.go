// Package pushsink is a push service double for load runs: one HTTPS
// listener that answers FCM's OAuth2 token endpoint and messages:send, and
// APNs' /3/device/ over HTTP/2, all with success, as fast as it can, and
// counts what it got. It writes what a Parley server needs to push to it
// (a CA certificate for SSL_CERT_FILE, an FCM service account key, an APNs
// .p8 key) into a directory. It checks nothing: package
// delivery/deliverytest holds the fakes that do.
package pushsink

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// Sink is a running push service double. It is safe for concurrent use.
type Sink struct {
	// URL is the endpoint for PARLEY_FCM_ENDPOINT and PARLEY_APNS_ENDPOINT.
	URL string
	// Env are the server's settings to push here, NAME=value.
	Env       []string
	srv       *http.Server
	fcm, apns atomic.Int64
}

// Start listens on addr and writes the CA certificate and the credentials
// into dir.
func Start(addr, dir string) (*Sink, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pushsink CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour), DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Sink{URL: "https://" + ln.Addr().String()}
	files, err := writeFiles(dir, caDER, s.URL)
	if err != nil {
		return nil, errors.Join(err, ln.Close())
	}
	s.Env = append(files,
		"PARLEY_FCM_ENDPOINT="+s.URL, "PARLEY_APNS_ENDPOINT="+s.URL,
		"PARLEY_APNS_KEY_ID=SINK000001", "PARLEY_APNS_TEAM_ID=SINKTEAM01", "PARLEY_APNS_TOPIC=bench.parley")
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"sink","token_type":"Bearer","expires_in":3600}`)
	})
	mux.HandleFunc("POST /v1/projects/{project}/messages:send", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		s.fcm.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"name":"projects/sink/messages/1"}`)
	})
	mux.HandleFunc("POST /3/device/{token}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		s.apns.Add(1)
		w.WriteHeader(http.StatusOK)
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, NextProtos: []string{"h2", "http/1.1"}}}
	go func() { _ = s.srv.ServeTLS(ln, "", "") }()
	return s, nil
}

// writeFiles writes the CA certificate, an FCM service account whose
// token_uri is url's, and an APNs key into dir, and returns the settings
// naming them.
func writeFiles(dir string, caDER []byte, url string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		return nil, err
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	rsaDER, err := x509.MarshalPKCS8PrivateKey(rsaKey)
	if err != nil {
		return nil, err
	}
	creds, err := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "sink", "private_key_id": "1", "client_email": "sink@sink.iam.gserviceaccount.com",
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: rsaDER})), "token_uri": url + "/token",
	})
	if err != nil {
		return nil, err
	}
	fcm := filepath.Join(dir, "fcm.json")
	if err := os.WriteFile(fcm, creds, 0o600); err != nil {
		return nil, err
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ecKey)
	if err != nil {
		return nil, err
	}
	p8 := filepath.Join(dir, "apns.p8")
	if err := os.WriteFile(p8, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}), 0o600); err != nil {
		return nil, err
	}
	return []string{"SSL_CERT_FILE=" + ca, "PARLEY_FCM_CREDENTIALS=" + fcm, "PARLEY_APNS_KEY=" + p8}, nil
}

// Counts returns the FCM and APNs pushes received so far.
func (s *Sink) Counts() (fcm, apns int64) { return s.fcm.Load(), s.apns.Load() }

// Close stops the listener.
func (s *Sink) Close() error { return s.srv.Close() }

// String describes the counts.
func (s *Sink) String() string {
	f, a := s.Counts()
	return fmt.Sprintf("%d FCM and %d APNs pushes", f, a)
}
