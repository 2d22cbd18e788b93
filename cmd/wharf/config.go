package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// envPrefix is prepended to a flag's name, upper-cased with dashes turned
// into underscores, to form the environment variable that sets it.
const envPrefix = "WHARF_"

// applyConfigSources fills every flag the command line did not set, first
// from its WHARF_* environment variable, then from the YAML file named by
// the config flag (if any). The order of precedence is therefore:
// command line, environment, file, built-in default.
func applyConfigSources(flags *pflag.FlagSet, configFlag string) error {
	fileValues, err := readConfigFile(flags, configFlag)
	if err != nil {
		return err
	}
	var errs []string
	flags.VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == configFlag {
			return
		}
		value, source, ok := lookupValue(f.Name, fileValues)
		if !ok {
			return
		}
		if err := flags.Set(f.Name, value); err != nil {
			errs = append(errs, fmt.Sprintf("%s: invalid value %q for %s: %v", source, value, f.Name, err))
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("configuration: %s", strings.Join(errs, "; "))
	}
	return nil
}

// envName returns the environment variable that sets a flag.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func lookupValue(name string, fileValues map[string]string) (value, source string, ok bool) {
	if v, ok := os.LookupEnv(envName(name)); ok {
		return v, "environment variable " + envName(name), true
	}
	if v, ok := fileValues[name]; ok {
		return v, "config file", true
	}
	return "", "", false
}

// readConfigFile loads the YAML file named by the config flag, or by its
// environment variable. Keys are flag names; values are scalars or lists.
func readConfigFile(flags *pflag.FlagSet, configFlag string) (map[string]string, error) {
	path, _ := flags.GetString(configFlag)
	if !flags.Changed(configFlag) {
		if v, ok := os.LookupEnv(envName(configFlag)); ok {
			path = v
		}
	}
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	return parseConfigYAML(data, flags)
}

// parseConfigYAML turns a YAML mapping of flag names into flag values. An
// unknown key is an error, so that a typo does not pass silently.
func parseConfigYAML(data []byte, flags *pflag.FlagSet) (map[string]string, error) {
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("parse config file: %w", err)
	}
	values := make(map[string]string, len(raw))
	for key, v := range raw {
		if flags.Lookup(key) == nil {
			return nil, fmt.Errorf("config file: unknown setting %q (settings are the flag names of 'wharf serve')", key)
		}
		switch v := v.(type) {
		case []any:
			parts := make([]string, len(v))
			for i, p := range v {
				parts[i] = fmt.Sprint(p)
			}
			values[key] = strings.Join(parts, ",")
		case nil:
			values[key] = ""
		case map[string]any:
			return nil, fmt.Errorf("config file: setting %q must be a scalar or a list", key)
		default:
			values[key] = fmt.Sprint(v)
		}
	}
	return values, nil
}
