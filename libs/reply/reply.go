// Package reply keeps the endpoints of every service to one line per
// outcome: a call's error, or the response built from its result.
package reply

// With returns err if there is one, and the response build makes from
// the call's result otherwise. build runs only on success.
func With[R any](err error, build func() R) (R, error) {
	if err != nil {
		var zero R
		return zero, err
	}
	return build(), nil
}

// Map converts every element of in with f, for the lists of responses;
// nil stays nil.
func Map[T, U any](in []T, f func(T) U) []U {
	if in == nil {
		return nil
	}
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}
