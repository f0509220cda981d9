// Package tlsutil makes Loghouse's certificates and the TLS configurations
// that use them. Every connection, client to server and server to server,
// is mutual TLS against one cluster CA. DESIGN.md beside this file gives
// the reasons for the choices below.
//
// # Certificates
//
// CreateCA makes the cluster CA ("loghoused tls ca create"); CreateCert
// makes server and client certificates signed by it ("loghoused tls cert
// create -server|-client -name NAME"). Keys are ECDSA P-256 by default
// (KeyECDSA) or RSA 2048 (KeyRSA), stored as PKCS #8 "PRIVATE KEY" PEM
// blocks; certificates are "CERTIFICATE" blocks. Every certificate has a
// random 128-bit serial number and a subject key id, and starts being
// valid ClockSkew (one minute) before it was made unless a NotBefore is
// given.
//
//	          CA                      server                   client
//	CN        Loghouse CA <hex>       node name                client identity
//	validity  5 years                 1 year                   1 year
//	usage     cert sign, CRL sign     digital signature        digital signature
//	ext usage -                       server auth, client auth client auth
//	basic     CA, path length 0       not a CA                 not a CA
//	DNS SANs  -                       server.<domain>,         -
//	                                  localhost, extra names
//	IP SANs   -                       127.0.0.1, ::1, extra    -
//
// RSA leaves also get the key encipherment usage. A certificate may not be
// valid for longer than its CA.
//
// The DNS SAN "server.<domain>" (ServerRole, "server.loghouse", for the
// default domain "loghouse") is the server role: it is what makes a
// certificate a server's. Client certificates never carry it, so only
// servers can join raft or forward requests (IsServer, RequireServer), and
// a client that dials a server with server name ServerRole accepts only a
// server certificate. Servers allow client authentication too, because
// they dial each other. "localhost", 127.0.0.1 and ::1 are in server
// certificates unless CertOptions.OmitLoopback is set.
//
// A certificate's common name is the identity: the node name of a server,
// the client identity (what ACL policies name) of a client. Names are 1 to
// 64 letters, digits, '.', '_' and '-', beginning and ending with a letter
// or digit, without ".." (ValidateName); so a name is also safe in a file
// name.
//
// # Files
//
// Files are named as "consul tls" names them:
//
//	loghouse-agent-ca.pem          CA certificate       0644
//	loghouse-agent-ca-key.pem      CA private key       0600
//	server-<name>.pem              server certificate   0644
//	server-<name>-key.pem          server private key   0600
//	client-<name>.pem              client certificate   0644
//	client-<name>-key.pem          client private key   0600
//
// KeyPair.WriteFiles writes a certificate and key through a temporary file
// ("." + name + ".tmp" + random digits, in the same directory), fsync,
// link(2) or, with force, rename(2), and an fsync of the directory. It
// refuses to replace an existing file unless forced. GenerateDev writes
// all of a development agent's files (the CA, server-<node>, client-root)
// into one directory.
//
// A CA file given to a Store may hold several CA certificates, to rotate
// CAs; a certificate file may hold the leaf followed by intermediates. Key
// files may also be SEC 1 ("EC PRIVATE KEY") or PKCS #1 ("RSA PRIVATE
// KEY"); encrypted keys are not supported.
//
// # TLS configurations and reload
//
// A Store holds the current CA pool, certificate and key, loaded from
// Files. Loading checks that the CA file holds only CA certificates, that
// the key is the certificate's, and that the certificate chains to the CA
// and is valid now. Reload loads the files again and swaps the material in
// one step; if anything fails the old material stays and the *FileError
// names the file. ServerConfig and ClientConfig read the current material
// at every handshake, so a reload (on SIGHUP) applies to new connections
// without a restart; established connections are not affected.
//
// Both configurations allow TLS 1.2 and 1.3 only, and for TLS 1.2 only
// ECDHE key exchange with AEAD ciphers (CipherSuites). Servers require and
// verify a client certificate against the CA. Session tickets are off on
// the server, so that every connection is verified against the current CA
// pool.
//
// On the server side, IdentityFromState returns the verified peer's common
// name, and VerifiedLeaf its certificate; neither ever returns an
// unverified certificate.
package tlsutil
