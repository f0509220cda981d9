package tlsutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/loghouse/loghouse/pkg/vfs"
)

// File names, after Consul's ("consul tls").
const (
	// CACertFileName is the CA certificate's file name.
	CACertFileName = "loghouse-agent-ca.pem"
	// CAKeyFileName is the CA key's file name.
	CAKeyFileName = "loghouse-agent-ca-key.pem"
)

// File modes.
const (
	// CertFileMode is the mode of certificate files: public.
	CertFileMode fs.FileMode = 0o644
	// KeyFileMode is the mode of key files: owner only.
	KeyFileMode fs.FileMode = 0o600
)

// CertFileNames returns the file names of a server or client certificate
// and its key: "<kind>-<name>.pem" and "<kind>-<name>-key.pem".
func CertFileNames(kind Kind, name string) (certFile, keyFile string, err error) {
	if kind != ServerCert && kind != ClientCert {
		return "", "", fmt.Errorf("%w: certificate kind %s", ErrInvalidOptions, kind)
	}
	if err := ValidateName(name); err != nil {
		return "", "", err
	}
	base := kind.String() + "-" + name
	return base + ".pem", base + "-key.pem", nil
}

// WriteFiles writes p's certificate to certFile (mode 0644) and key to
// keyFile (mode 0600). Each file is written to a temporary file in the same
// directory, synced, and moved into place, and the directory is synced, so
// a crash leaves the old file or the new one, never a torn one. Unless
// force is set, WriteFiles writes nothing if either file exists and returns
// an error matching ErrFileExists; the check and the move are one atomic
// step (link(2)), so a concurrent writer is not overwritten either. If the
// certificate cannot be written after the key was, the new key is removed
// again (when force is not set; a forced overwrite cannot be undone).
// Directories are not created.
func (p KeyPair) WriteFiles(certFile, keyFile string, force bool) error {
	if certFile == "" || keyFile == "" || filepath.Clean(certFile) == filepath.Clean(keyFile) {
		return fmt.Errorf("%w: need two different file names, got %q and %q", ErrInvalidOptions, certFile, keyFile)
	}
	if !force {
		for _, name := range []string{keyFile, certFile} {
			if _, err := os.Lstat(name); err == nil {
				return fmt.Errorf("%w: %s (refusing to overwrite)", ErrFileExists, name)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("tlsutil: write %s: %w", name, err)
			}
		}
	}
	if err := writeFile(keyFile, p.KeyPEM, KeyFileMode, force); err != nil {
		return err
	}
	if err := writeFile(certFile, p.CertPEM, CertFileMode, force); err != nil {
		if !force {
			if rerr := os.Remove(keyFile); rerr != nil {
				return errors.Join(err, fmt.Errorf("tlsutil: remove %s after failed write: %w", keyFile, rerr))
			}
		}
		return err
	}
	return nil
}

// writeFile writes data to path with perm via a synced temporary file. With
// force it replaces path (rename); without, it fails with ErrFileExists if
// path exists (link).
func writeFile(path string, data []byte, perm fs.FileMode, force bool) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("tlsutil: write %s: %w", path, err)
	}
	tmpName := tmp.Name()
	defer func() {
		// The temporary file is gone after a rename; after a link or a
		// failure it is removed here.
		if rerr := os.Remove(tmpName); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, fmt.Errorf("tlsutil: remove temporary file: %w", rerr))
		}
	}()
	// Chmod, unlike the mode given to open(2), is not masked by the umask.
	if err := tmp.Chmod(perm); err != nil {
		return errors.Join(fmt.Errorf("tlsutil: write %s: %w", path, err), tmp.Close())
	}
	if _, err := tmp.Write(data); err != nil {
		return errors.Join(fmt.Errorf("tlsutil: write %s: %w", path, err), tmp.Close())
	}
	if err := tmp.Sync(); err != nil {
		return errors.Join(fmt.Errorf("tlsutil: write %s: %w", path, err), tmp.Close())
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("tlsutil: write %s: %w", path, err)
	}
	if force {
		err = os.Rename(tmpName, path)
	} else {
		err = os.Link(tmpName, path)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s (refusing to overwrite)", ErrFileExists, path)
		}
	}
	if err != nil {
		return fmt.Errorf("tlsutil: write %s: %w", path, err)
	}
	if err := (vfs.OS{}).SyncDir(dir); err != nil {
		return fmt.Errorf("tlsutil: write %s: sync directory: %w", path, err)
	}
	return nil
}
