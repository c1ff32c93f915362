package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skiff-paas/skiff/internal/skiff"
)

func certsCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "List, add and remove an app's TLS certificates",
		Long: `The router serves HTTPS on its TLS address for every custom domain that has a
certificate, choosing it by the name the client asks for (SNI). A
certificate is stored for each of the app's domains it covers (a wildcard
certificate covers one label); its private key is kept encrypted.`,
		Example: `  skiff certs -a shop
  skiff certs add -a shop fullchain.pem privkey.pem`,
		Args: args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			certs, err := c.Certs(cmd.Context(), name)
			if err != nil {
				return err
			}
			_, err = show(e, certs, fmt.Sprintf("%s has no certificates. Add one: skiff certs add -a %s CERT KEY", name, name),
				[]string{"HOSTNAME", "EXPIRES", "NAMES", "ISSUER"}, func(c skiff.CertView) []string {
					return []string{c.Hostname, c.NotAfter.Format("2006-01-02"), strings.Join(c.Names, ","), c.Issuer}
				})
			return err
		},
	}
	e.appFlag(cmd)
	e.jsonFlag(cmd)
	add := &cobra.Command{
		Use:     "add CERT KEY",
		Short:   "Add a certificate (PEM chain, leaf first) and its private key (PEM)",
		Example: "  skiff certs add -a shop fullchain.pem privkey.pem",
		Args:    args(2, 2),
		RunE: func(cmd *cobra.Command, a []string) error {
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			var pems [2]string
			for i, f := range a {
				b, err := os.ReadFile(f)
				if err != nil {
					return &skiff.Error{Kind: skiff.KindInvalid, Message: "cannot read " + f, Hint: "give the paths of the PEM files", Err: err}
				}
				pems[i] = string(b)
			}
			certs, err := c.AddCert(cmd.Context(), name, pems[0], pems[1])
			if err != nil {
				return err
			}
			for _, cert := range certs {
				fmt.Fprintf(e.stdout, "Added the certificate of %s (expires %s).\n", cert.Hostname, cert.NotAfter.Format("2006-01-02"))
			}
			return nil
		},
	}
	remove := &cobra.Command{
		Use:     "remove HOST",
		Aliases: []string{"rm"},
		Short:   "Remove the certificate of a hostname",
		Example: "  skiff certs remove -a shop www.shop.example",
		Args:    args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			if err := c.RemoveCert(cmd.Context(), name, a[0]); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Removed the certificate of %s from %s.\n", a[0], name)
			return nil
		},
	}
	e.appFlag(add)
	e.appFlag(remove)
	cmd.AddCommand(add, remove)
	return cmd
}
