// A gate: a promise the test opens. Upstreams wait on one to hold an answer back for exactly as long as
// a test needs, and tests wait on one to know a step has happened, so a test states the order of
// events ("the call failed while the upstream still held its answer") instead of how long they took.

export interface Gate {
  /** Resolves once `open()` is called. */
  readonly opened: Promise<void>
  readonly isOpen: boolean
  open(): void
}

export function createGate(): Gate {
  let open!: () => void
  let isOpen = false
  const opened = new Promise<void>((resolve) => {
    open = resolve
  })
  return {
    opened,
    get isOpen() {
      return isOpen
    },
    open() {
      isOpen = true
      open()
    },
  }
}
