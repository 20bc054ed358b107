/** Where a subcommand writes: injected so tests capture it. */
export interface CliIo {
  out(line: string): void;
  err(line: string): void;
}

export interface ParsedArgs {
  positional: string[];
  /** The last value of each value option. */
  values: Map<string, string>;
  /** Every value of each value option, in order (for repeatable options such as `--forward`). */
  lists: Map<string, string[]>;
  flags: Set<string>;
  problem?: string;
}

/** Parse `--name value` / `--flag` options; positional arguments in order. */
export function parseArgs(args: string[], spec: { values: string[]; flags: string[] }): ParsedArgs {
  const positional: string[] = [];
  const values = new Map<string, string>();
  const lists = new Map<string, string[]>();
  const flags = new Set<string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith('--')) {
      positional.push(a);
      continue;
    }
    const name = a.slice(2);
    if (spec.flags.includes(name)) flags.add(name);
    else if (spec.values.includes(name)) {
      const v = args[++i];
      if (v === undefined) return { positional, values, lists, flags, problem: `option --${name} needs a value` };
      values.set(name, v);
      const list = lists.get(name);
      if (list) list.push(v);
      else lists.set(name, [v]);
    } else {
      return { positional, values, lists, flags, problem: `unknown option ${a}` };
    }
  }
  return { positional, values, lists, flags };
}
