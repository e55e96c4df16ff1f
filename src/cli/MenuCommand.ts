import { Command } from "effect/cli"
export const menu = Command.make("menu")
