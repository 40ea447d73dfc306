/**
 * Small BPMN models for the demo, the tests and the benchmarks: a start
 * event, one step, an end event; optionally a boundary error event that
 * leads to its own end event. Multi-line scripts keep their line breaks as
 * character references, as DESIGN.md requires of everything we write into BPMN.
 */
export interface SandboxStep {
  kind: 'sandbox';
  topic?: string;
  script?: string;
  scriptRef?: string;
  resultVariable?: string;
  /** Extra extension properties, e.g. to test a missing script. */
  properties?: Record<string, string>;
}

export interface InlineStep {
  kind: 'inline';
  script: string;
  resultVariable?: string;
}

export interface ModelOptions {
  id: string;
  name?: string;
  step: SandboxStep | InlineStep;
  /** Catch BPMN errors with this code (or all, with '*') on a boundary event. */
  catchError?: string;
}

/** Escapes text for an XML attribute value, line breaks included. */
export function xmlAttribute(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/\r/g, '&#13;')
    .replace(/\n/g, '&#10;')
    .replace(/\t/g, '&#9;');
}

function xmlText(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function stepXml(step: SandboxStep | InlineStep): string {
  if (step.kind === 'inline') {
    const result = step.resultVariable
      ? ` camunda:resultVariable="${xmlAttribute(step.resultVariable)}"`
      : '';
    return `<bpmn:scriptTask id="step" name="inline script" scriptFormat="javascript"${result}>
      <bpmn:script>${xmlText(step.script)}</bpmn:script>
    </bpmn:scriptTask>`;
  }
  const properties: Record<string, string> = { ...step.properties };
  if (step.script !== undefined) properties['script'] = step.script;
  if (step.scriptRef !== undefined) properties['scriptRef'] = step.scriptRef;
  if (step.resultVariable !== undefined) properties['resultVariable'] = step.resultVariable;
  const entries = Object.entries(properties)
    .map(
      ([name, value]) =>
        `<camunda:property name="${xmlAttribute(name)}" value="${xmlAttribute(value)}" />`,
    )
    .join('\n          ');
  return `<bpmn:serviceTask id="step" name="sandboxed script" camunda:type="external" camunda:topic="${xmlAttribute(step.topic ?? 'sandbox')}">
      <bpmn:extensionElements>
        <camunda:properties>
          ${entries}
        </camunda:properties>
      </bpmn:extensionElements>
    </bpmn:serviceTask>`;
}

/** A deployable process: start → step → end, with an optional error path. */
export function processModel(options: ModelOptions): string {
  const errorRef =
    options.catchError && options.catchError !== '*' ? ' errorRef="caught_error"' : '';
  const errorDefinition =
    options.catchError && options.catchError !== '*'
      ? `<bpmn:error id="caught_error" name="${xmlAttribute(options.catchError)}" errorCode="${xmlAttribute(options.catchError)}" />`
      : '';
  const errorPath = options.catchError
    ? `<bpmn:boundaryEvent id="on_error" attachedToRef="step">
      <bpmn:errorEventDefinition${errorRef} />
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="to_error_end" sourceRef="on_error" targetRef="error_end" />
    <bpmn:endEvent id="error_end" name="error handled" />`
    : '';

  return `<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
  id="defs_${options.id}" targetNamespace="http://camunda-sandbox.dev/examples">
  ${errorDefinition}
  <bpmn:process id="${options.id}" name="${xmlAttribute(options.name ?? options.id)}" isExecutable="true" camunda:historyTimeToLive="P1D">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="to_step" sourceRef="start" targetRef="step" />
    ${stepXml(options.step)}
    <bpmn:sequenceFlow id="to_end" sourceRef="step" targetRef="end" />
    <bpmn:endEvent id="end" name="done" />
    ${errorPath}
  </bpmn:process>
</bpmn:definitions>
`;
}
