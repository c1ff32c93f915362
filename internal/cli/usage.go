package cli

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/skiff-paas/skiff/internal/skiff"
)

func usageCommand(e *env) *cobra.Command {
	var month string
	var asCSV bool
	cmd := &cobra.Command{
		Use:   "usage",
		Short: "Show what apps used in a month, and what it costs",
		Long: `Show each app's usage over a month (the current one by default, up to now):
CPU time, memory, process hours by size, bandwidth out through the routers,
and each add-on's hours and data, with their cost at the prices the server
was started with (skiff server --prices FILE or --price-*; zero is free).

Without -a it shows every app you may use; an admin sees every app that used
anything in the month, deleted ones too. --csv prints the report as CSV for
a spreadsheet or an invoice, --json as JSON. docs/usage.md says how each
quantity is measured.`,
		Example: `  skiff usage -a shop
  skiff usage --month 2026-11 --csv > usage-2026-11.csv`,
		Args: args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if asCSV && e.g.json {
				return usageError(cmd, "--csv and --json are two formats of the same report: choose one")
			}
			if month != "" {
				if _, err := skiff.ParseMonth(month); err != nil {
					return usageError(cmd, "--month %q is not a month: give it as YYYY-MM", month)
				}
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			if asCSV {
				return c.UsageCSV(cmd.Context(), month, e.g.app, e.stdout)
			}
			rep, err := c.Usage(cmd.Context(), month, e.g.app)
			if err != nil {
				return err
			}
			if e.g.json {
				return e.printJSON(rep)
			}
			return e.usageTable(rep)
		},
	}
	cmd.Flags().StringVarP(&e.g.app, "app", "a", "", "the app (default: every app you may use)")
	cmd.Flags().StringVar(&month, "month", "", "the month, as YYYY-MM (default: the current one)")
	cmd.Flags().BoolVar(&asCSV, "csv", false, "print CSV instead of a table")
	e.jsonFlag(cmd)
	return cmd
}

// usageTable prints a report for people: a line per item, a total per
// app, and the report's total.
func (e *env) usageTable(rep skiff.UsageReport) error {
	const stamp = "2006-01-02 15:04"
	fmt.Fprintf(e.stdout, "Usage in %s, %s to %s UTC, prices in %s\n\n", rep.Month, rep.From.UTC().Format(stamp),
		rep.To.UTC().Format(stamp), rep.Currency)
	if len(rep.Apps) == 0 {
		fmt.Fprintf(e.stdout, "No app used anything in %s.\n", rep.Month)
		return nil
	}
	rows := [][]string{{"APP", "ITEM", "QUANTITY", "UNIT PRICE", "COST"}}
	for _, app := range rep.Apps {
		for _, it := range app.Items {
			rows = append(rows, []string{app.App, it.Description, fmt.Sprintf("%.6g %s", it.Quantity, it.Unit),
				strconv.FormatFloat(it.UnitPrice, 'f', -1, 64), money(it.Cost)})
		}
		rows = append(rows, []string{app.App, "total", "", "", money(app.Total)})
	}
	rows = append(rows, []string{"", "TOTAL", "", "", money(rep.Total) + " " + rep.Currency})
	return e.table(rows)
}

// money shows an amount to four decimals: small usage costs fractions of
// a cent.
func money(v float64) string { return strconv.FormatFloat(v, 'f', 4, 64) }
