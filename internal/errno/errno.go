// Package errno defines the error numbers the simulator returns, named as
// Linux names them. Public packages re-export them (mmu.EINVAL is
// errno.EINVAL), so callers test errors with errors.Is against either.
package errno

// Errno is a Linux error number. Its value is Linux's number on x86-64, so
// traces read like strace; its text is the same on every host.
type Errno int

// The error numbers the model returns.
const (
	EPERM   Errno = 1
	ENOENT  Errno = 2
	EINTR   Errno = 4
	EIO     Errno = 5
	EAGAIN  Errno = 11
	ENOMEM  Errno = 12
	EFAULT  Errno = 14
	EBUSY   Errno = 16
	EEXIST  Errno = 17
	EINVAL  Errno = 22
	ENOSPC  Errno = 28
	ERANGE  Errno = 34
	ENOSYS  Errno = 38
	ENOTSUP Errno = 95
)

var names = map[Errno][2]string{
	EPERM:   {"EPERM", "operation not permitted"},
	ENOENT:  {"ENOENT", "no such entry"},
	EINTR:   {"EINTR", "interrupted"},
	EIO:     {"EIO", "input/output error"},
	EAGAIN:  {"EAGAIN", "try again"},
	ENOMEM:  {"ENOMEM", "out of memory"},
	EFAULT:  {"EFAULT", "bad address"},
	EBUSY:   {"EBUSY", "busy"},
	EEXIST:  {"EEXIST", "already exists"},
	EINVAL:  {"EINVAL", "invalid argument"},
	ENOSPC:  {"ENOSPC", "no space left"},
	ERANGE:  {"ERANGE", "out of range"},
	ENOSYS:  {"ENOSYS", "not implemented"},
	ENOTSUP: {"ENOTSUP", "not supported"},
}

// Name returns the symbolic name, such as "EINVAL".
func (e Errno) Name() string {
	if n, ok := names[e]; ok {
		return n[0]
	}
	return "E?"
}

// Error returns the name and a short description, such as
// "EINVAL (invalid argument)".
func (e Errno) Error() string {
	if n, ok := names[e]; ok {
		return n[0] + " (" + n[1] + ")"
	}
	return "E? (unknown error)"
}

// ByName returns the Errno called name, such as "ENOMEM".
func ByName(name string) (Errno, bool) {
	for e, n := range names {
		if n[0] == name {
			return e, true
		}
	}
	return 0, false
}
