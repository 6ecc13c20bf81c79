/**
 * YAML values pretty-printed (re-indented by two, comments kept), with the `yaml` package: a
 * bundle of its own (yaml.js), fetched by the page only when it first shows a YAML value.
 */
import { parseDocument } from "yaml";

/** The value re-indented, or null when it is not YAML after all. */
export function prettyYaml(text: string): string | null {
  const doc = parseDocument(text);
  if (doc.errors.length > 0) return null;
  return doc.toString({ indent: 2 }).replace(/\n$/, "");
}
