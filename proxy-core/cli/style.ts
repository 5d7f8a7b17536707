// Terminal colors, only on a TTY and never when NO_COLOR is set (no-color.org).
export interface Style {
  red(s: string): string
  green(s: string): string
  yellow(s: string): string
  dim(s: string): string
  bold(s: string): string
}

export function createStyle(stream: { isTTY?: boolean }): Style {
  const on = Boolean(stream.isTTY) && !process.env.NO_COLOR
  const wrap = (open: number, close: number) => (s: string) => (on ? `\x1b[${open}m${s}\x1b[${close}m` : s)
  return { red: wrap(31, 39), green: wrap(32, 39), yellow: wrap(33, 39), dim: wrap(2, 22), bold: wrap(1, 22) }
}

/** Pads columns to their widest cell; width ignores color codes. */
export function table(rows: string[][], style: Style, header: string[]): string {
  const visible = (s: string) => s.replace(/\x1b\[\d+m/g, '').length
  const all = [header, ...rows]
  const widths = header.map((_, i) => Math.max(...all.map((r) => visible(r[i] ?? ''))))
  const line = (r: string[], head: boolean) =>
    r
      .map((c, i) => {
        const cell = head ? style.bold(c) : c
        return i === r.length - 1 ? cell : cell + ' '.repeat(widths[i]! - visible(c))
      })
      .join('  ')
      .trimEnd()
  return [line(header, true), ...rows.map((r) => line(r, false))].join('\n')
}
