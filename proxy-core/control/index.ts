// The live config's control commands (DESIGN.md "Live config"): publish, shift and status. Each is
// a CLI module ({ usage, run }), loaded only when its command runs.
export * as publishCommand from './publish-command.ts'
export * as shiftCommand from './shift-command.ts'
export * as statusCommand from './status-command.ts'
