package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skiff-paas/skiff/internal/skiff"
)

func keysCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "List, add and remove the SSH keys you git push with",
		Long: `List your SSH public keys. A key lets you git push to (and clone) the apps you
may use; an admin's keys work for every app.`,
		Example: `  skiff keys
  skiff keys add
  skiff keys add ~/.ssh/work.pub --name laptop
  skiff keys remove laptop`,
		Args: args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			keys, err := c.Keys(cmd.Context())
			if err != nil {
				return err
			}
			_, err = show(e, keys, "No SSH keys yet. Add yours: skiff keys add", []string{"FINGERPRINT", "NAME", "USER", "ADDED"},
				func(k skiff.Key) []string { return []string{k.Fingerprint, k.Name, k.User, ago(k.CreatedAt)} })
			return err
		},
	}
	e.jsonFlag(cmd)
	var name string
	add := &cobra.Command{
		Use:   "add [FILE]",
		Short: "Add an SSH public key (default: ~/.ssh/id_ed25519.pub, then id_ecdsa.pub, id_rsa.pub)",
		Example: `  skiff keys add
  skiff keys add ~/.ssh/work.pub --name laptop`,
		Args: args(0, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			path := ""
			if len(a) == 1 {
				path = a[0]
			}
			data, path, err := readPublicKey(path)
			if err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			k, err := c.AddKey(cmd.Context(), data, name)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Added %s (%s) from %s for %s.\n", k.Fingerprint, k.Name, path, k.User)
			return nil
		},
	}
	add.Flags().StringVar(&name, "name", "", "a name for the key (default: its comment)")
	remove := &cobra.Command{
		Use:     "remove KEY",
		Aliases: []string{"rm"},
		Short:   "Remove a key, named by its fingerprint or name",
		Example: "  skiff keys remove laptop",
		Args:    args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			if err := c.RemoveKey(cmd.Context(), a[0]); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Removed key %s.\n", a[0])
			return nil
		},
	}
	cmd.AddCommand(add, remove)
	return cmd
}

// readPublicKey reads the key at path, or the user's first default key.
func readPublicKey(path string) (string, string, error) {
	candidates := []string{path}
	if path == "" {
		home, _ := os.UserHomeDir()
		candidates = nil
		for _, n := range []string{"id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub"} {
			candidates = append(candidates, filepath.Join(home, ".ssh", n))
		}
	}
	for _, p := range candidates {
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) && path == "" {
			continue
		}
		if err != nil {
			return "", p, &skiff.Error{Kind: skiff.KindInvalid, Message: "cannot read " + p, Hint: "give the path of a public key: skiff keys add ~/.ssh/id_ed25519.pub", Err: err}
		}
		if strings.Contains(string(data), "PRIVATE KEY") {
			return "", p, skiff.Errorf(skiff.KindInvalid, "give the .pub file next to it", "%s is a private key", p)
		}
		return string(data), p, nil
	}
	return "", "", skiff.Errorf(skiff.KindInvalid, "make one with ssh-keygen -t ed25519, then run skiff keys add",
		"no SSH public key found in ~/.ssh")
}

func gitCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "git",
		Short: "Set up git push to an app",
		Args:  args(0, 0),
	}
	var remote string
	rc := &cobra.Command{
		Use:   "remote",
		Short: "Add a git remote for the app to the current repository",
		Long: `Add (or update) a git remote, named skiff by default, that pushes to the app:
afterwards "git push skiff main" deploys it, and commands run in this
repository know the app without -a.`,
		Example: `  skiff git remote -a shop
  git push skiff main`,
		Args: args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			info, err := c.App(cmd.Context(), name)
			if err != nil {
				return err
			}
			if info.GitURL == "" {
				return skiff.Errorf(skiff.KindUnavailable, "start the server with its ssh role (skiff server --ssh-addr :2222)",
					"this Skiff serves no git push")
			}
			if err := exec.Command("git", "rev-parse", "--git-dir").Run(); err != nil {
				return skiff.Errorf(skiff.KindInvalid, "run it inside a git repository (git init makes one)", "not in a git repository")
			}
			verb := "add"
			if exec.Command("git", "remote", "get-url", remote).Run() == nil {
				verb = "set-url"
			}
			if out, err := exec.Command("git", "remote", verb, remote, info.GitURL).CombinedOutput(); err != nil {
				return fmt.Errorf("git remote %s: %v: %s", verb, err, out)
			}
			fmt.Fprintf(e.stdout, "Git remote %s: %s\nDeploy with: git push %s main\n", remote, info.GitURL, remote)
			return nil
		},
	}
	e.appFlag(rc)
	rc.Flags().StringVarP(&remote, "remote", "r", "skiff", "the remote's name")
	cmd.AddCommand(rc)
	return cmd
}

func usersCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "users",
		Short: "Make users (admins only)",
		Args:  args(0, 0),
	}
	var admin bool
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Make a user and print its API token",
		Long: `Make a user and print its first API token, which is shown only once. A user
sees and changes only the apps it creates; an admin sees every app.`,
		Example: "  skiff users create ada",
		Args:    args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			t, err := c.CreateUser(cmd.Context(), a[0], admin)
			if err != nil {
				return err
			}
			if e.g.json {
				return e.printJSON(t)
			}
			fmt.Fprintf(e.stdout, "Created user %s. Its token, shown only this once:\n%s\nLog in with: skiff login --api %s --token %s\n",
				t.User, t.Token, c.BaseURL(), t.Token)
			return nil
		},
	}
	create.Flags().BoolVar(&admin, "admin", false, "make the user an admin")
	e.jsonFlag(create)
	cmd.AddCommand(create)
	return cmd
}
