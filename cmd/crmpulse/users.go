package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"

	"github.com/spf13/cobra"

	"github.com/crmpulse/crmpulse/ingest/csvimport"
)

func usersCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "users", Short: "Manage the directory of people"}
	var mappingPath, server string
	imp := &cobra.Command{
		Use:   "import FILE --mapping FILE",
		Short: "Load a roster CSV into the directory of a running server",
		Long: `Reads the roster FILE, makes a person of each row as the mapping says, and
stores each with PUT /v1/users/{id} on a running server (token from
CRMPULSE_ADMIN_TOKEN). Rows without an id are listed by line number.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := csvimport.LoadPeopleMapping(mappingPath)
			if err != nil {
				return err
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			people, sum, err := csvimport.ReadPeople(f, m)
			if err != nil {
				return fmt.Errorf("users import %s: %w", args[0], err)
			}
			client := newAPIClient(server, os.Getenv("CRMPULSE_ADMIN_TOKEN"))
			for _, p := range people {
				body, err := json.Marshal(p)
				if err != nil {
					return err
				}
				if _, err := client.send(cmd.Context(), "PUT", "/v1/users/"+url.PathEscape(p.ID), body); err != nil {
					return fmt.Errorf("users import %s: %w", args[0], err)
				}
			}
			return report(cmd, args[0], sum, fmt.Sprintf("%d people stored", len(people)))
		},
	}
	imp.Flags().StringVar(&mappingPath, "mapping", "", "YAML mapping of roster columns (required)")
	imp.Flags().StringVar(&server, "server", defaultServer, "base URL of the running server")
	imp.MarkFlagRequired("mapping")
	cmd.AddCommand(imp)
	return cmd
}
