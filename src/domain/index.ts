export type * from './domain-def.js';
export { parseDomainXml, domainFromTree, domainNameProblem, canonicalUuid, unitBytes } from './parse-domain-xml.js';
export type { ParseDomainOptions } from './parse-domain-xml.js';
export { formatDomainXml } from './format-domain-xml.js';
export { parseXml, serializeXml, XML_LIMITS } from './xml.js';
export { pathProblem } from './parse-util.js';
export { parseDiskXml } from './parse-device-xml.js';
export { diskLayers, type DiskLayer } from './disk-layers.js';
