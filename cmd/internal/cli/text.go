package cli

import "fmt"

// Plural is n and what, with an s unless n is 1: "1 object", "3 splits".
func Plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
