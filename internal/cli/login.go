package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skiff-paas/skiff/internal/client"
	"github.com/skiff-paas/skiff/internal/secret"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// savedConfig is what skiff login keeps in the user's config directory.
type savedConfig struct {
	API   string `json:"api"`
	Token string `json:"token"`
}

// configPath is $XDG_CONFIG_HOME/skiff/config.json (~/.config/… by default).
func configPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", &skiff.Error{Kind: skiff.KindInvalid, Message: "cannot find your config directory",
			Hint: "set HOME or XDG_CONFIG_HOME, or pass --api and --token (or SKIFF_API and SKIFF_TOKEN)", Err: err}
	}
	return filepath.Join(dir, "skiff", "config.json"), nil
}

func loadConfig() (savedConfig, error) {
	var c savedConfig
	p, err := configPath()
	if err != nil {
		return c, err
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err == nil {
		err = json.Unmarshal(data, &c)
	}
	if err != nil {
		return c, &skiff.Error{Kind: skiff.KindInvalid, Message: "cannot read " + p,
			Hint: "log in again to rewrite it: skiff login --api URL --token TOKEN", Err: err}
	}
	return c, nil
}

// saveConfig writes the config file atomically with mode 0600: it holds a
// token.
func saveConfig(c savedConfig) (string, error) {
	p, err := configPath()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", err
	}
	data, _ := json.MarshalIndent(c, "", "  ")
	tmp := p + ".tmp"
	os.Remove(tmp)
	if err := secret.WriteFileExclusive(tmp, append(data, '\n')); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return p, nil
}

func loginCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "login",
		Short: "Save the API address and token the other commands use",
		Long: `Check an API address and token, and save them in $XDG_CONFIG_HOME/skiff/config.json
(~/.config/skiff/config.json) with mode 0600 for the other commands.

Without --token the token is read from the standard input. The admin token
of a server is in its data directory, in admin.token.`,
		Example: `  skiff login --api http://127.0.0.1:7070 --token "$(cat /var/lib/skiff/admin.token)"`,
		Args:    args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			api, token := e.g.api, e.g.token
			if api == "" {
				api = os.Getenv("SKIFF_API")
			}
			if token == "" {
				token = os.Getenv("SKIFF_TOKEN")
			}
			if api == "" {
				return usageError(cmd, "login needs the API address: --api URL")
			}
			if !strings.Contains(api, "://") {
				api = "http://" + api
			}
			if token == "" {
				fmt.Fprint(e.stderr, "Token: ")
				line, _ := bufio.NewReader(e.stdin).ReadString('\n')
				if token = strings.TrimSpace(line); token == "" {
					return usageError(cmd, "login needs a token: --token TOKEN")
				}
			}
			who, err := client.New(api, token).WhoAmI(cmd.Context())
			if err != nil {
				return err
			}
			p, err := saveConfig(savedConfig{API: api, Token: token})
			if err != nil {
				return fmt.Errorf("save login: %w", err)
			}
			fmt.Fprintf(e.stdout, "Logged in to %s as %s (saved in %s)\n", api, who.User, p)
			return nil
		},
	}
}

func logoutCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Forget the saved API address and token",
		Args:  args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := configPath()
			if err != nil {
				return err
			}
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			fmt.Fprintln(e.stdout, "Logged out.")
			return nil
		},
	}
}
