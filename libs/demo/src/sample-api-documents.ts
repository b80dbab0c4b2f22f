import { RESOURCE_SCOPES, type ResourceServerName } from './resource-servers.js';

/*
 * OpenAPI 3 documents of the sample APIs, so a tool gateway can put them in front of agents:
 * each operation becomes a tool named by its operationId. Each document names the API's URL as
 * its server, and each operation the scope its token needs (`x-required-scope`, for the reader).
 */

type Document = Record<string, unknown>;

const accountParameter = { name: 'account', in: 'path', required: true, description: 'the account id, e.g. acme or globex', schema: { type: 'string', pattern: '^[a-z0-9-]{1,64}$' } };
const documentParameter = { name: 'id', in: 'path', required: true, description: 'the document id, e.g. acme-renewal-plan', schema: { type: 'string', pattern: '^[a-z0-9-]{1,128}$' } };
const json = (description: string) => ({ description, content: { 'application/json': { schema: { type: 'object' } } } });

function document(title: string, url: string, paths: Document): Document {
  return { openapi: '3.0.3', info: { title, version: '1.0.0' }, servers: [{ url }], paths };
}

export function sampleApiDocument(name: ResourceServerName, url: string): Document {
  switch (name) {
    case 'crm':
      return document('Sample CRM', url, {
        '/accounts/{account}/notes': {
          parameters: [accountParameter],
          get: { operationId: 'listNotes', summary: "An account's CRM notes", 'x-required-scope': RESOURCE_SCOPES.crmNotesRead, responses: { '200': json('the notes') } },
        },
      });
    case 'finance':
      return document('Sample finance', url, {
        '/accounts/{account}/spend': {
          parameters: [accountParameter],
          get: { operationId: 'getSpend', summary: "An account's spend this quarter", 'x-required-scope': RESOURCE_SCOPES.financeSpendRead, responses: { '200': json('the spend') } },
        },
      });
    case 'documents':
      return document('Sample documents', url, {
        '/documents/{id}': {
          parameters: [documentParameter],
          get: { operationId: 'getDocument', summary: 'A document', 'x-required-scope': RESOURCE_SCOPES.docsRead, responses: { '200': json('the document') } },
          put: {
            operationId: 'putDocument',
            summary: 'Writes a document (JSON)',
            'x-required-scope': RESOURCE_SCOPES.docsWrite,
            requestBody: { required: true, content: { 'application/json': { schema: { type: 'object' } } } },
            responses: { '200': json('the document, replaced'), '201': json('the document, created') },
          },
        },
      });
  }
}
