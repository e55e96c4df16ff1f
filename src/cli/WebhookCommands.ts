import { Command } from "effect/cli"
export const webhooks = Command.make("webhooks").pipe(Command.withDescription("Webhook endpoints"))
