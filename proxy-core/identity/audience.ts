// The audience of a token for one destination: `<mesh audience>/<service>`. A token a receiver saw
// (or logged) is good for that receiver only: replayed to another service, its `aud` is wrong.

export function audienceFor(meshAudience: string, service: string): string {
  return `${meshAudience}/${service}`
}
