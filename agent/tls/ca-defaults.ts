/** Defaults of a new inspection CA, shared by the library and the CLI (no dependencies: the CLI loads the CA code lazily). */
export const AWS_PERMITTED_DOMAINS: readonly string[] = ['amazonaws.com', 'api.aws', 'amazonaws.com.cn', 'amazonwebservices.com.cn'];
export const DEFAULT_VALIDITY_DAYS = 1825;
export const DEFAULT_COMMON_NAME = 'egress-witness inspection CA';
