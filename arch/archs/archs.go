// Package archs is the registry of architecture descriptors: it maps the
// names scenario scripts use ("x86_64", "arm64-16k", "um32") to fresh
// descriptors built by the backends in arch/x86, arch/arm64, arch/s390,
// arch/sparc and arch/um. It is the one package that knows every backend;
// core code takes an *arch.Arch and never names one.
//
// Its tests are the conformance suite every backend must pass, in the
// spirit of Linux's mm/debug_vm_pgtable.c: helper identities per
// protection, raw entry values as Linux writes them, and pgtable
// behaviour (map, split, protect, free, ENOMEM and EINVAL paths) on every
// architecture.
package archs

import (
	"fmt"
	"strings"

	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/arch/arm64"
	"github.com/ptsim/ptsim/arch/s390"
	"github.com/ptsim/ptsim/arch/sparc"
	"github.com/ptsim/ptsim/arch/um"
	"github.com/ptsim/ptsim/arch/x86"
	"github.com/ptsim/ptsim/internal/errno"
)

// registry lists the constructors in the order Names reports them.
var registry = []struct {
	name string
	make func() *arch.Arch
}{
	{"x86_64", func() *arch.Arch { return x86.New(x86.FourLevel) }},
	{"x86_64-la57", func() *arch.Arch { return x86.New(x86.LA57) }},
	{"arm64", func() *arch.Arch { return arm64.New(arm64.Granule4K) }},
	{"arm64-16k", func() *arch.Arch { return arm64.New(arm64.Granule16K) }},
	{"arm64-64k", func() *arch.Arch { return arm64.New(arm64.Granule64K) }},
	{"s390x", s390.New},
	{"sparc64", sparc.New},
	{"um", func() *arch.Arch { return um.New(um.UM64) }},
	{"um32", func() *arch.Arch { return um.New(um.UM32) }},
}

// Names returns the architecture names ByName accepts, in a fixed order:
// x86_64, x86_64-la57, arm64, arm64-16k, arm64-64k, s390x, sparc64, um,
// um32.
func Names() []string {
	names := make([]string, len(registry))
	for i, r := range registry {
		names[i] = r.name
	}
	return names
}

// ByName returns a fresh descriptor for the architecture called name; the
// caller may change it without affecting later calls. An unknown name is
// an error wrapping EINVAL that lists the valid names.
func ByName(name string) (*arch.Arch, error) {
	for _, r := range registry {
		if r.name == name {
			return r.make(), nil
		}
	}
	return nil, fmt.Errorf("unknown architecture %q (valid: %s): %w",
		name, strings.Join(Names(), ", "), errno.EINVAL)
}
