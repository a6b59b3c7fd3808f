/** The form svirt stores and names guests by: lower-case 8-4-4-4-12 (domain/parse-domain-xml.ts canonicalUuid makes it). */
const CANONICAL_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Whether `s` is a UUID in svirt's canonical form (a runtime dir's name, a report's key, a profile's uuid). */
export function isCanonicalUuid(s: string): boolean {
  return CANONICAL_UUID.test(s);
}
