import { endpointController } from '@mandate/bus';
import { approvalConsumeEndpoint, approvalDecideEndpoint, approvalGetEndpoint, approvalListEndpoint, approvalRequestEndpoint, approvalStatusEndpoint } from '@mandate/contracts';
import { ConsumeApproval } from '../domain/approvals/consume-approval.js';
import { DecideApproval } from '../domain/approvals/decide-approval.js';
import { GetApproval, GetApprovalStatus, ListApprovals } from '../domain/approvals/read-approvals.js';
import { RequestApproval } from '../domain/approvals/request-approval.js';

/** Approvals over NATS: the gateway requests and consumes them, the approvals page and the CLI read and decide them, agent code waits on their status. */
export const RequestApprovalEndpoint = endpointController(RequestApproval, (serve) => [serve(approvalRequestEndpoint, (approvals, { tenant, ...request }) => approvals.request(tenant, request))]);
export const ConsumeApprovalEndpoint = endpointController(ConsumeApproval, (serve) => [serve(approvalConsumeEndpoint, (approvals, r) => approvals.consume(r.tenant, r.digest))]);
export const GetApprovalEndpoint = endpointController(GetApproval, (serve) => [serve(approvalGetEndpoint, (approvals, r) => approvals.get(r.tenant, r.id))]);
export const GetApprovalStatusEndpoint = endpointController(GetApprovalStatus, (serve) => [serve(approvalStatusEndpoint, (approvals, r) => approvals.status(r.tenant, r.id))]);
export const ListApprovalsEndpoint = endpointController(ListApprovals, (serve) => [serve(approvalListEndpoint, (approvals, { tenant, ...request }) => approvals.list(tenant, request))]);
export const DecideApprovalEndpoint = endpointController(DecideApproval, (serve) => [serve(approvalDecideEndpoint, (approvals, { tenant, ...request }) => approvals.decide(tenant, request))]);
